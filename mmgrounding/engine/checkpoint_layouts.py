"""Read the model weights of every checkpoint layout our runners write.

Layouts (what :func:`read_model_state_dict` accepts as ``path``):

* ``file``: one ``torch.save`` file: mmengine's ``Runner`` (DDP or one
  process), ``GroundingFSDPStrategy`` with ``state_dict_cfg='full'`` (the
  default of ``configs/_base_/strategies/fsdp.py``: rank 0 writes the full,
  unsharded state dict), DeepSpeed with ``save_optimizer=False`` and the
  converters in ``tools/model_converters/``. Weights under ``state_dict``
  (or ``module``, or the file is the state dict itself).
* ``deepspeed``: the directory DeepSpeed's engine writes for one tag
  (mmengine names it like a file: ``work_dir/iter_N.pth/``), holding
  ``mp_rank_00_model_states.pt`` (``module``: the model's ``state_dict``,
  i.e. the same keys as an mmengine file, in the training dtype) and one
  ``*_optim_states.pt`` per rank; or its parent directory with a ``latest``
  file naming the tag. Under ZeRO-1/2 ``module`` holds every tensor. ZeRO-3
  writes ``zero_pp_rank_{r}_mp_rank_00_model_states.pt`` per rank whose
  parameters are empty placeholders; the values live in the per-rank fp32
  optimizer partitions and are merged with DeepSpeed's own ``zero_to_fp32``
  (``get_fp32_state_dict_from_zero_checkpoint``: every parameter, frozen
  ones included, in fp32), which needs ``deepspeed`` importable.
* ``fsdp_local``: the directory of ``rank{i}.pth`` files of
  ``state_dict_cfg='local'``: flat-parameter shards whose unflattening
  needs the wrapped model and a process group of the same world size;
  refused with the way out (re-save with ``state_dict_cfg='full'``).
"""
import os
import os.path as osp
from typing import Dict, Tuple

import torch

DS_MODEL_STATES = 'mp_rank_00_model_states.pt'
#: ZeRO-3 writes one model-states file per rank (partitioned placeholders)
DS_ZERO3_MODEL_STATES = 'zero_pp_rank_0_mp_rank_00_model_states.pt'
_DS_FILES = (DS_MODEL_STATES, DS_ZERO3_MODEL_STATES)


def _deepspeed_globals():
    """DeepSpeed's checkpoint classes allowed for ``weights_only`` loads
    (a no-op without deepspeed: then no file holds them)."""
    try:
        from mmgrounding.engine.strategies.deepspeed import _safe_load
        return _safe_load()
    except ImportError:
        import contextlib
        return contextlib.nullcontext()


def _load(path: str) -> dict:
    from mmengine.runner.checkpoint import _load_checkpoint
    with _deepspeed_globals():
        return _load_checkpoint(path, map_location='cpu')


def _weights(ckpt: dict, path: str) -> Dict[str, torch.Tensor]:
    for key in ('state_dict', 'module'):
        if isinstance(ckpt.get(key, None), dict):
            return ckpt[key]
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise ValueError(f'{osp.basename(path)}: no state_dict / module entry '
                     f'(keys: {sorted(ckpt)[:10]})')


def find_deepspeed_tag_dir(path: str) -> str:
    """The tag directory (the one holding ``mp_rank_00_model_states.pt``)
    of a DeepSpeed checkpoint ``path`` (that directory, or its parent with a
    ``latest`` file)."""
    if any(osp.isfile(osp.join(path, n)) for n in _DS_FILES):
        return path
    latest = osp.join(path, 'latest')
    if osp.isfile(latest):
        with open(latest) as f:
            tag = f.read().strip()
        if any(osp.isfile(osp.join(path, tag, n)) for n in _DS_FILES):
            return osp.join(path, tag)
    raise FileNotFoundError(
        f'{path}: not a DeepSpeed checkpoint (no {DS_MODEL_STATES}, no '
        '"latest" tag file)')


def detect_layout(path: str) -> str:
    """``'file'``, ``'deepspeed'`` or ``'fsdp_local'`` (see the module
    docstring); FileNotFoundError otherwise."""
    if osp.isfile(path):
        return 'file'
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path}: no such checkpoint')
    names = set(os.listdir(path))
    if names & set(_DS_FILES) or 'latest' in names:
        return 'deepspeed'
    if 'rank0.pth' in names:
        return 'fsdp_local'
    raise FileNotFoundError(
        f'{path}: a directory that is neither a DeepSpeed checkpoint '
        f'({DS_MODEL_STATES}) nor FSDP local shards (rank0.pth)')


def _zero_stage(states: dict) -> int:
    ds_config = states.get('ds_config', None) or {}
    return int((ds_config.get('zero_optimization', None) or {}).get(
        'stage', 0))


def _read_deepspeed(path: str) -> Dict[str, torch.Tensor]:
    tag_dir = find_deepspeed_tag_dir(path)
    if osp.isfile(osp.join(tag_dir, DS_MODEL_STATES)):
        states = _load(osp.join(tag_dir, DS_MODEL_STATES))
        if _zero_stage(states) < 3:
            return states['module']
    states = _load(osp.join(tag_dir, DS_ZERO3_MODEL_STATES))
    module = states['module']
    try:
        from deepspeed.utils.zero_to_fp32 import \
            get_fp32_state_dict_from_zero_checkpoint
    except ImportError as err:
        raise ImportError(
            f'{path}: a ZeRO-3 checkpoint; its weights are partitioned '
            'over the per-rank optimizer files and are merged with '
            "DeepSpeed's zero_to_fp32, which needs deepspeed installed "
            '(pip install -r requirements/dist.txt)') from err
    parent, tag = osp.split(osp.normpath(tag_dir))
    with _deepspeed_globals():
        merged = get_fp32_state_dict_from_zero_checkpoint(parent, tag=tag)
    # buffers (and anything DeepSpeed does not partition) from `module`
    out = {k: v for k, v in module.items() if v.numel() and k not in merged}
    out.update(merged)
    return out


def read_model_state_dict(path: str) -> Tuple[Dict[str, torch.Tensor], str]:
    """Model weights of the checkpoint at ``path``, whatever its layout.

    Returns:
        ``(state_dict, layout)``: ``state_dict`` maps the model's own keys
        (a DDP/DeepSpeed ``module.`` prefix removed) to CPU tensors.
    """
    layout = detect_layout(path)
    if layout == 'file':
        state = _weights(_load(path), path)
    elif layout == 'deepspeed':
        state = _read_deepspeed(path)
    else:
        raise ValueError(
            f'{path}: FSDP local shards (state_dict_cfg="local") cannot be '
            'read without the wrapped model on the same number of ranks; '
            'train (or resume and save) with state_dict_cfg="full", the '
            'default of configs/_base_/strategies/fsdp.py')
    state = {(k[len('module.'):] if k.startswith('module.') else k): v
             for k, v in state.items()}
    return state, layout
