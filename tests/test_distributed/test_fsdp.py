"""2-process gloo FSDP through ``FlexibleRunner`` + ``GroundingFSDPStrategy``:
train 2 iterations, save, resume in fresh processes, continue to 4; weights
and per-rank losses equal an uninterrupted 4-iteration run exactly.

With mmengine's own ``FSDPStrategy`` this fails on CPU at wrapping
(``device_id=LOCAL_RANK``), at the full-state save (``offload_to_cpu=True``)
and at resume (positional ``optim_state_dict_to_load``); see
``mmgrounding/engine/strategies/fsdp.py``.
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from export_check import check_merge_lora_export  # noqa: E402

import mmgrounding  # noqa: E402,F401  (weights-only checkpoint globals)
# FSDP units by hand: root + 2 decoder layers + LoRA A and B of q_proj and
# v_proj in 2 layers (8) + embed_tokens + lm_head
UNITS = 1 + 2 + 8 + 2


@pytest.mark.slow
def test_fsdp_train_save_resume_equals_uninterrupted(dist_launch_b,
                                                     tmp_path):
    out = dist_launch_b / 'fsdp'  # straight,cut in launch a, resume in b
    res = {(m, r): torch.load(out / f'{m}_rank{r}.pt')
           for m in ('straight', 'cut', 'resume') for r in (0, 1)}
    for (mode, rank), value in res.items():
        assert value['units'] == UNITS, (mode, rank, value['units'])
    for rank in (0, 1):
        straight = res[('straight', rank)]['losses']
        assert sorted(res[('resume', rank)]['losses']) == [3, 4]
        assert res[('resume', rank)]['losses'] == {
            i: straight[i] for i in (3, 4)}
        assert res[('cut', rank)]['losses'] == {i: straight[i] for i in (1, 2)}
        assert straight[4] < straight[1]  # it trains
    # clipping saw the global gradient norm (FSDP.clip_grad_norm_): equal on
    # both ranks although each holds another shard and another batch; and it
    # clipped (norm > max_norm 0.1)
    for mode in ('straight', 'resume'):
        norms = [res[(mode, r)]['grad_norms'] for r in (0, 1)]
        assert norms[0] == norms[1] and norms[0], (mode, norms)
        assert min(norms[0].values()) > 0.1
    # the ranks drew different batches (and so different losses)
    assert res[('straight', 0)]['losses'][1] != \
        res[('straight', 1)]['losses'][1]

    cut = torch.load(out / 'cut' / 'iter_2.pth', weights_only=True)
    assert cut['rng_state']['world_size'] == 2
    assert cut['optimizer']['state']  # full optimizer state saved
    ref = torch.load(out / 'straight' / 'iter_4.pth',
                     weights_only=True)['state_dict']
    got = torch.load(out / 'cut' / 'iter_4.pth',
                     weights_only=True)['state_dict']
    assert got.keys() == ref.keys()
    assert any('lora_A' in k for k in got)  # full (unsharded) names
    for key, value in got.items():
        assert torch.equal(value, ref[key]), key
    moved = [k for k in got if not torch.equal(got[k], cut['state_dict'][k])]
    assert any('lora_B' in k for k in moved)

    # export: merge_lora reads the FSDP full-state file
    from mmgrounding.engine.checkpoint_layouts import read_model_state_dict
    state, layout = read_model_state_dict(str(out / 'cut' / 'iter_4.pth'))
    assert layout == 'file' and state.keys() == got.keys()
    check_merge_lora_export(tmp_path / 'export', out / 'tok',
                            str(out / 'cut' / 'iter_4.pth'), got)
