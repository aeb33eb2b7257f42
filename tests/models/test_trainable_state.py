"""Checkpoints leave out only frozen tensors that equal their pretrained
directory, record their source, and refuse another source.

Tiny GLaMMs whose language model is read from a tiny HF directory written
into ``tmp_path`` (``build_tiny_llama``): LoRA r=4 on q/v, embedding and LM
head rows train, the decoder base is frozen.
"""
import copy

import pytest
import torch
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint

from mmgrounding.models.utils.trainable_state import (MANIFEST_KEY,
                                                      CheckpointSourceError,
                                                      full_state_dict,
                                                      manifest_of)
from mmgrounding.registry import MODELS
from mmgrounding.testing import (build_tiny_llama, make_glamm_batch,
                                 tiny_glamm_cfg)

LORA = dict(r=4, lora_alpha=8, lora_dropout=0.0,
            target_modules=['q_proj', 'v_proj'])
LM_PART = 'language_model.model.base_model.model'
PROMPTS = ['Describe <bbox> please.', 'Segment it.']
ANSWERS = ['<p> a red circle </p> [SEG] on the left.', 'It is [SEG].']


def _llm_dir(root, seed):
    path = root / f'llama_seed{seed}'
    if not path.exists():
        build_tiny_llama(str(path), seed=seed)
    return str(path)


def _cfg(llm_dir):
    cfg = tiny_glamm_cfg(llm_dir, lora=LORA)
    lm = cfg['language_model']
    lm.pop('config')
    lm['pretrained_model_name_or_path'] = llm_dir
    return cfg


def _build(cfg):
    torch.manual_seed(0)
    return MODELS.build(copy.deepcopy(cfg))


def _batch(model):
    return make_glamm_batch(
        model, PROMPTS, ANSWERS,
        region_boxes=[torch.tensor([[4., 4., 40., 40.]]), torch.zeros(0, 4)])


def _logits(model, batch):
    model.eval()
    with torch.no_grad():
        return model(*batch, mode='tensor')


def _frozen_base_keys(model):
    """Keys of the frozen decoder weights read from the directory."""
    return [
        k for k, p in model.named_parameters()
        if k.startswith(LM_PART + '.') and not p.requires_grad
    ]


@pytest.fixture(scope='module')
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp('llms')
    return dict(a=_llm_dir(root, 0), b=_llm_dir(root, 1))


def test_untouched_base_is_left_out_and_file_is_smaller(dirs, tmp_path):
    model = _build(_cfg(dirs['a']))
    state = model.state_dict()
    frozen = _frozen_base_keys(model)
    assert len(frozen) == 2 * 9 + 1  # 2 layers x (7 proj + 2 norms) + norm
    assert not set(frozen) & set(state)
    # trained tensors and parts built from configs (CLIP, SAM) stay
    for key, param in model.named_parameters():
        if param.requires_grad or not key.startswith('language_model.'):
            assert key in state, key
    manifest = manifest_of(state)
    part = manifest['parts'][LM_PART]
    assert part['source'] == dirs['a']
    assert part['key'] == 'HFCausalLM.pretrained_model_name_or_path'
    assert sorted(f'{LM_PART}.{k}' for k in part['dropped']) == sorted(frozen)

    with full_state_dict(model):
        full = model.state_dict()
    assert MANIFEST_KEY not in full and set(frozen) <= set(full)
    save_checkpoint(dict(state_dict=state), str(tmp_path / 'small.pth'))
    save_checkpoint(dict(state_dict=full), str(tmp_path / 'full.pth'))
    # hand count of the frozen bytes: per layer q,k,v,o 128x128, gate/up/down
    # 128x256, two RMSNorms of 128; plus the final norm; fp32
    frozen_bytes = 4 * (2 * (4 * 128 * 128 + 3 * 128 * 256 + 2 * 128) + 128)
    small = (tmp_path / 'small.pth').stat().st_size
    big = (tmp_path / 'full.pth').stat().st_size
    assert big - small >= 0.95 * frozen_bytes, (big, small, frozen_bytes)
    loaded = torch.load(tmp_path / 'small.pth', weights_only=True)
    assert MANIFEST_KEY in loaded['state_dict']

    # reload into a fresh build: identical, nothing reported missing
    other = _build(_cfg(dirs['a']))
    missing, unexpected = other.load_state_dict(
        loaded['state_dict'], strict=True)
    assert not missing and not unexpected
    batch = _batch(model)
    torch.testing.assert_close(_logits(other, batch), _logits(model, batch),
                               rtol=0, atol=0)


def test_model_state_dict_path_without_hooks_or_runner(dirs):
    """What DeepSpeed/FSDP do: plain state_dict() of a wrapped model."""
    outer = torch.nn.ModuleDict(dict(m=_build(_cfg(dirs['a']))))
    state = outer.state_dict()
    assert 'm.' + MANIFEST_KEY in state
    assert not set('m.' + k for k in _frozen_base_keys(outer['m'])) & set(
        state)
    other = torch.nn.ModuleDict(dict(m=_build(_cfg(dirs['a']))))
    result = other.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def _runner(cfg, work_dir, data, max_iters, **kwargs):
    loader = torch.utils.data.DataLoader([data],
                                         batch_size=1,
                                         collate_fn=lambda items: items[0])
    return Runner(
        model=copy.deepcopy(cfg),
        work_dir=str(work_dir),
        train_dataloader=loader,
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[
            dict(type='TrainableWeightsCheckpointHook'),
            dict(type='WeightsOnlyCheckpointHook')
        ],
        default_scope='mmgrounding',
        randomness=dict(seed=0),
        experiment_name=f'{work_dir.name}_{max_iters}',
        **kwargs)


def test_load_from_another_base_train_save_reload_is_exact(dirs, tmp_path):
    """The GranD-pretrained case: load_from a checkpoint whose frozen base
    is not the directory's; the saved checkpoint must keep that base."""
    cfg = _cfg(dirs['a'])
    cfg['data_preprocessor'] = dict(type='BaseDataPreprocessor')
    base = _build(cfg)
    with full_state_dict(base):
        pretrained = base.state_dict()
    gen = torch.Generator().manual_seed(3)
    for key in _frozen_base_keys(base):  # "another base": every weight moves
        pretrained[key] = pretrained[key] + 0.05 * torch.randn(
            pretrained[key].shape, generator=gen)
    grand = tmp_path / 'grand_pretrained.pth'
    torch.save(dict(state_dict=pretrained, meta={}), grand)

    inputs, samples = _batch(base)
    data = dict(inputs=inputs, data_samples=samples)
    runner = _runner(cfg, tmp_path / 'ft', data, 1, load_from=str(grand))
    runner.train()
    trained = runner.model
    ckpt = tmp_path / 'ft' / 'iter_1.pth'
    saved = torch.load(ckpt, weights_only=True)['state_dict']
    # every frozen base weight moved away from the directory: all are saved
    for key in _frozen_base_keys(trained):
        assert key in saved, key
        torch.testing.assert_close(saved[key], pretrained[key])

    rebuilt = _build(cfg)
    load_checkpoint(rebuilt, str(ckpt), strict=True)
    batch = (inputs, samples)
    torch.testing.assert_close(_logits(rebuilt, batch),
                               _logits(trained, batch), rtol=0, atol=0)
    with full_state_dict(rebuilt), full_state_dict(trained):
        ref = trained.state_dict()
        for key, value in rebuilt.state_dict().items():
            assert torch.equal(value, ref[key]), key


def test_resume_from_a_trainable_only_checkpoint(dirs, tmp_path):
    """--resume with left-out frozen weights continues exactly."""
    cfg = _cfg(dirs['a'])
    cfg['data_preprocessor'] = dict(type='BaseDataPreprocessor')
    inputs, samples = _batch(_build(cfg))
    data = dict(inputs=inputs, data_samples=samples)
    straight = _runner(cfg, tmp_path / 'straight', data, 2)
    straight.train()
    _runner(cfg, tmp_path / 'cut', data, 1).train()
    saved = torch.load(tmp_path / 'cut' / 'iter_1.pth', weights_only=True)
    assert manifest_of(saved['state_dict']) is not None
    resumed = _runner(cfg, tmp_path / 'cut', data, 2, resume=True)
    resumed.train()
    assert resumed.iter == 2
    with full_state_dict(straight.model), full_state_dict(resumed.model):
        ref = straight.model.state_dict()
        for key, value in resumed.model.state_dict().items():
            assert torch.equal(value, ref[key]), key


def test_checkpoint_of_another_source_is_refused(dirs, tmp_path):
    state = _build(_cfg(dirs['a'])).state_dict()
    other = _build(_cfg(dirs['b']))  # same architecture, other weights
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointSourceError) as err:
        other.load_state_dict(state, strict=False)
    msg = str(err.value)
    assert LM_PART in msg and dirs['a'] in msg and dirs['b'] in msg
    recorded = manifest_of(state)['parts'][LM_PART]['fingerprint']
    assert recorded in msg
    # refused before anything was copied
    for key, value in other.state_dict().items():
        if key != MANIFEST_KEY:
            assert torch.equal(value, before[key]), key

    # mmengine's loader goes through the same check
    path = tmp_path / 'a.pth'
    torch.save(dict(state_dict=state), path)
    with pytest.raises(CheckpointSourceError, match='fingerprint'):
        load_checkpoint(other, str(path))

    # a model whose LM comes from a config cannot restore it either
    from_config = _build(tiny_glamm_cfg(dirs['a'], lora=LORA))
    with pytest.raises(CheckpointSourceError, match='from a config'):
        from_config.load_state_dict(state, strict=False)


def test_changed_frozen_tensor_is_refused_on_load(dirs):
    """A left-out tensor must still hold the recorded value when loading."""
    state = _build(_cfg(dirs['a'])).state_dict()
    model = _build(_cfg(dirs['a']))
    key = _frozen_base_keys(model)[0]
    with torch.no_grad():
        model.get_parameter(key).add_(1.0)
    with pytest.raises(CheckpointSourceError, match='changed after'):
        model.load_state_dict(state)


_FSDP_SCRIPT = r'''
import os, sys, tempfile
from pathlib import Path
import torch
import torch.distributed as dist
from torch.distributed.fsdp import FullStateDictConfig, StateDictType
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp.wrap import ModuleWrapPolicy
from transformers.models.llama.modeling_llama import LlamaDecoderLayer
sys.path.insert(0, os.path.join('tests', 'models'))
import test_trainable_state as t
from mmgrounding.models.utils.trainable_state import manifest_of

os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=sys.argv[1])
dist.init_process_group('gloo', rank=0, world_size=1)
llm = t._llm_dir(Path(tempfile.mkdtemp()), 0)


def wrap(model):
    return FSDP(model, device_id=torch.device('cpu'), use_orig_params=True,
                auto_wrap_policy=ModuleWrapPolicy({LlamaDecoderLayer}))


def full(fsdp):
    return FSDP.state_dict_type(
        fsdp, StateDictType.FULL_STATE_DICT,
        FullStateDictConfig(offload_to_cpu=False, rank0_only=False))


model = t._build(t._cfg(llm))
with torch.no_grad():  # "trained": every trainable tensor moves
    for p in model.parameters():
        if p.requires_grad:
            p.add_(0.01)
src = wrap(model)
with full(src):
    state = src.state_dict()
parts = manifest_of(state)['parts']
dst = wrap(t._build(t._cfg(llm)))
with full(dst):
    result = dst.load_state_dict(state, strict=True)
batch = t._batch(model)
src.eval()
dst.eval()
with torch.no_grad():
    same = torch.equal(src(*batch, mode='tensor'), dst(*batch, mode='tensor'))
print('RESULT', {k: len(v['dropped']) for k, v in parts.items()},
      result.missing_keys, same)
'''


@pytest.mark.slow
def test_fsdp_full_state_dict_leaves_out_and_restores(tmp_path):
    """FSDP (1 gloo process on CPU, decoder layers wrapped): the wrapped
    model's state_dict leaves out the frozen decoder weights (the root
    unit's own frozen norm stays: FSDP post-processes it), and a fresh FSDP
    model loads it strictly with identical outputs."""
    import socket
    import subprocess
    import sys

    from mmgrounding.testing.scripts import REPO_ROOT
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = str(sock.getsockname()[1])
    out = subprocess.run([sys.executable, '-c', _FSDP_SCRIPT, port],
                         cwd=REPO_ROOT,
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [x for x in out.stdout.splitlines() if x.startswith('RESULT')][-1]
    assert line == f"RESULT {{'{LM_PART}': 18}} [] True", line
