"""``read_model_state_dict`` on hand-made files of each layout (the real
strategies' checkpoints are read in tests/test_distributed: FSDP full file,
DeepSpeed ZeRO-2 and ZeRO-3 directories)."""
import pytest
import torch

from mmgrounding.engine.checkpoint_layouts import (detect_layout,
                                                   read_model_state_dict)

W = {'proj.weight': torch.arange(6.).reshape(2, 3), 'proj.bias': torch.ones(2)}


def _same(got):
    assert got.keys() == W.keys()
    for key, value in W.items():
        assert torch.equal(got[key], value), key


@pytest.mark.parametrize('payload', [
    dict(state_dict=W, meta={}),  # Runner / FSDP full
    dict(module={f'module.{k}': v for k, v in W.items()}),  # DDP prefix
    W,  # a bare state dict
])
def test_single_file(tmp_path, payload):
    torch.save(payload, tmp_path / 'ckpt.pth')
    got, layout = read_model_state_dict(str(tmp_path / 'ckpt.pth'))
    assert layout == 'file'
    _same(got)


def test_deepspeed_zero2_directory_and_latest_tag(tmp_path):
    tag = tmp_path / 'iter_4.pth'
    tag.mkdir()
    torch.save(dict(module=W, ds_config=dict(zero_optimization=dict(stage=2)),
                    meta={}), tag / 'mp_rank_00_model_states.pt')
    got, layout = read_model_state_dict(str(tag))
    assert layout == 'deepspeed'
    _same(got)
    (tmp_path / 'latest').write_text('iter_4.pth\n')  # DeepSpeed's own
    got, layout = read_model_state_dict(str(tmp_path))
    assert layout == 'deepspeed'
    _same(got)


def test_refusals(tmp_path):
    shards = tmp_path / 'iter_2.pth'
    shards.mkdir()
    torch.save({}, shards / 'rank0.pth')
    assert detect_layout(str(shards)) == 'fsdp_local'
    with pytest.raises(ValueError, match='state_dict_cfg="full"'):
        read_model_state_dict(str(shards))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='neither a DeepSpeed'):
        read_model_state_dict(str(tmp_path / 'empty'))
    with pytest.raises(FileNotFoundError, match='no such checkpoint'):
        read_model_state_dict(str(tmp_path / 'missing.pth'))
    torch.save(dict(meta={}, optimizer={}), tmp_path / 'noweights.pth')
    with pytest.raises(ValueError, match='noweights.pth: no state_dict'):
        read_model_state_dict(str(tmp_path / 'noweights.pth'))
