"""Checkpoints that hold what trains, filtered inside the model's state dict.

A 7B grounded LMM is ~15 GB of weights of which ~1 GB trains. Frozen tensors
that still equal what their pretrained directory holds need not be saved:
the model reloads them when it is built. Doing this in the model's
``state_dict`` (as xtuner's LLaVA does), not in a runner hook, makes it hold
on every save path: mmengine's ``save_checkpoint``, ``--resume``,
``load_from``, and DeepSpeed / FSDP, which call ``model.state_dict()`` and
skip checkpoint hooks.

What is left out is decided per tensor, never per part:

* trained state (parameters that require grad, buffers of modules that own
  one) is always kept;
* a frozen tensor of a part loaded by
  :func:`mmgrounding.utils.hf_loading.load_pretrained_model` is left out only
  when its current value still matches the fingerprint recorded when it came
  from the directory. After ``load_from`` of a checkpoint with another base
  (the GranD-pretrained GLaMM under a Vicuna directory) the changed base
  weights no longer match and are saved; the others are left out;
* everything else (parts built from a config, e.g. tiny random models) is
  kept: it exists nowhere but in the checkpoint.

Every left-out tensor is recorded in a manifest stored in the state dict
itself (key :data:`MANIFEST_KEY`, a uint8 tensor holding JSON, so the file
stays ``torch.load(weights_only=True)``-loadable and survives every save
path): per part its module path, source directory, the part fingerprint and
each left-out tensor's fingerprint. Loading checks the manifest before any
weight is copied and refuses (:class:`CheckpointSourceError`) when a part was
built from another source than the one recorded, or when the model's current
value of a left-out tensor is not the recorded one; the left-out keys are
then not reported as missing (``strict=True`` works).
"""
import contextlib
import json
from typing import Dict, Iterator, Optional, Set

import torch
from mmengine.logging import print_log
from torch import nn

from mmgrounding.utils.hf_loading import (named_state_tensors,
                                          pretrained_source,
                                          tensor_fingerprint)

#: State-dict key (under the model's prefix) of the left-out manifest.
MANIFEST_KEY = '_trainable_state_manifest'
MANIFEST_FORMAT = 'mmgrounding.trainable_state'
MANIFEST_VERSION = 1

_KEEP_ALL = '_trainable_state_keep_all'
_EXPECTED_MISSING = '_trainable_state_expected_missing'


class CheckpointSourceError(RuntimeError):
    """A checkpoint left tensors out that this model cannot restore."""


def encode_manifest(manifest: dict) -> torch.Tensor:
    """JSON -> uint8 tensor [N] (weights-only safe, moves like a weight)."""
    data = json.dumps(manifest, sort_keys=True).encode()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def decode_manifest(value: torch.Tensor) -> dict:
    """Inverse of :func:`encode_manifest`; checks format and version."""
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 \
            or value.dim() != 1:
        raise CheckpointSourceError(
            f'checkpoint entry {MANIFEST_KEY!r} must be a 1-D uint8 tensor, '
            f'got {type(value).__name__}')
    try:
        manifest = json.loads(value.cpu().numpy().tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointSourceError(
            f'checkpoint entry {MANIFEST_KEY!r} is not valid JSON: {err}'
        ) from err
    if not isinstance(manifest, dict) or manifest.get(
            'format') != MANIFEST_FORMAT or not isinstance(
                manifest.get('parts'), dict):
        raise CheckpointSourceError(
            f'checkpoint entry {MANIFEST_KEY!r} is not a '
            f'{MANIFEST_FORMAT} manifest')
    if manifest.get('version') != MANIFEST_VERSION:
        raise CheckpointSourceError(
            f'checkpoint manifest version {manifest.get("version")!r} is '
            f'not supported (this code reads version {MANIFEST_VERSION})')
    return manifest


def manifest_of(state_dict: Dict[str, torch.Tensor],
                prefix: str = '') -> Optional[dict]:
    """The decoded manifest of a saved state dict, or None if nothing was
    left out."""
    value = state_dict.get(prefix + MANIFEST_KEY)
    return None if value is None else decode_manifest(value)


#: Module names that wrappers insert and their state dicts leave out (FSDP,
#: activation checkpointing, torch.compile).
_WRAPPER_SEGMENTS = frozenset(
    ('_fsdp_wrapped_module', '_checkpoint_wrapped_module', '_orig_mod'))
_FSDP_SEGMENT = '_fsdp_wrapped_module'


def clean_key(name: str) -> str:
    """A module-tree name as it appears in a state dict (wrapper segments
    removed, as torch's FSDP does)."""
    return '.'.join(p for p in name.split('.') if p not in _WRAPPER_SEGMENTS)


def source_key(name: str) -> str:
    """The name a tensor had when loaded: peft wraps a tuned layer and moves
    its weight to ``<layer>.base_layer.weight``."""
    return clean_key(name).replace('.base_layer.', '.')


def _join(part: str, name: str) -> str:
    return f'{part}.{name}' if part else name


def _source_parts(model: nn.Module) -> Iterator:
    """``(raw path, module, PretrainedSource)`` of every tagged submodule."""
    for path, module in model.named_modules():
        source = pretrained_source(module)
        if source is not None:
            yield path, module, source


def _left_out(model: nn.Module, state_dict: dict, prefix: str) -> dict:
    """Remove restorable frozen tensors from ``state_dict``; their manifest
    entries per part (names as in the state dict).

    Under FSDP the model's own wrapper post-processes the state dict after
    this hook and needs the tensors it manages: those stay (tensors inside
    nested FSDP units were already processed and can go).
    """
    wrapped = prefix.endswith(_FSDP_SEGMENT + '.')
    parts = {}
    for path, module, source in _source_parts(model):
        dropped = {}
        for name, tensor, trained in named_state_tensors(module):
            raw = _join(path, name)
            key = prefix + clean_key(raw)
            recorded = source.tensors.get(source_key(name))
            if trained or recorded is None or key not in state_dict:
                continue
            if wrapped and _FSDP_SEGMENT not in raw.split('.'):
                continue
            if tensor_fingerprint(state_dict[key]) == recorded:
                dropped[clean_key(name)] = dict(
                    fingerprint=recorded, shape=list(state_dict[key].shape))
        for name in dropped:
            del state_dict[prefix + clean_key(_join(path, name))]
        if dropped:
            parts[clean_key(path)] = dict(
                key=source.key,
                source=source.path,
                realpath=source.realpath,
                fingerprint=source.fingerprint,
                dropped=dropped)
    return parts


def _save_hook(model: nn.Module, state_dict: dict, prefix: str,
               local_metadata: dict) -> None:
    """State-dict post-hook: leave out restorable frozen tensors."""
    if model.__dict__.get(_KEEP_ALL):
        return
    parts = _left_out(model, state_dict, prefix)
    if parts:
        state_dict[prefix + MANIFEST_KEY] = encode_manifest(
            dict(
                format=MANIFEST_FORMAT,
                version=MANIFEST_VERSION,
                parts=parts))


def check_manifest(model: nn.Module, manifest: dict,
                   prefix: str = '',
                   present: Optional[Set[str]] = None) -> Set[str]:
    """Check that ``model`` can restore what a checkpoint left out.

    Args:
        model: the model about to load the checkpoint.
        manifest: decoded manifest of the checkpoint.
        prefix: prefix of the model's keys in the state dict.
        present: keys the checkpoint holds after all (not checked).

    Returns:
        The left-out keys (with ``prefix``), which will be missing.

    Raises:
        CheckpointSourceError: naming the part, the recorded and the current
            source and fingerprint, or the tensor whose current value is not
            the recorded one.
    """
    present = present or set()
    expected = set()
    tagged = {clean_key(p): m for p, m, _ in _source_parts(model)}
    names = {clean_key(p) for p, _ in model.named_modules()}
    for path, entry in manifest['parts'].items():
        recorded = (f"{entry.get('source')!r} (fingerprint "
                    f"{entry.get('fingerprint')})")
        dropped = entry.get('dropped', {})
        what = (f'The checkpoint left out {len(dropped)} frozen tensors of '
                f'part {path!r} ({entry.get("key")}), to be restored from '
                f'{recorded}')
        if path not in names:
            raise CheckpointSourceError(
                f'{what}, but this model has no part {path!r}.')
        module = tagged.get(path)
        if module is None:
            raise CheckpointSourceError(
                f'{what}, but this model built {path!r} without a '
                'pretrained directory (from a config); load it into a model '
                f'built from {entry.get("source")!r} or use a checkpoint '
                'that holds every tensor.')
        source = pretrained_source(module)
        if source.fingerprint != entry.get('fingerprint'):
            raise CheckpointSourceError(
                f'{what}, but this model built it from {source.describe()}; '
                'the left-out weights would silently differ. Build the model '
                f'from {entry.get("source")!r} or use a checkpoint that '
                'holds every tensor.')
        if source.realpath != entry.get('realpath'):
            print_log(
                f'Part {path!r}: the checkpoint recorded the source '
                f'{entry.get("source")!r}; this model read the same weights '
                f'(fingerprint {source.fingerprint}) from {source.path!r}.',
                logger='current')
        current = {
            clean_key(name): t
            for name, t, _ in named_state_tensors(module)
        }
        for name, recorded_tensor in dropped.items():
            key = prefix + _join(path, name)
            if key in present:
                continue
            if name not in current:
                raise CheckpointSourceError(
                    f'{what}; this model has no tensor {name!r} in it.')
            expected.add(key)
            fingerprint = recorded_tensor['fingerprint']
            if list(current[name].shape) != recorded_tensor['shape']:
                continue  # a shard (FSDP): the part fingerprint vouches
            now = tensor_fingerprint(current[name])
            if now != fingerprint:
                raise CheckpointSourceError(
                    f'{what}; the model\'s current {_join(path, name)!r} '
                    f'(fingerprint {now}) is not the one recorded '
                    f'({fingerprint}): it was changed after the model was '
                    'built, so leaving it as is would not restore the '
                    'checkpoint.')
    return expected


def _load_pre_hook(model: nn.Module, state_dict: dict, prefix: str,
                   local_metadata: dict, strict: bool, missing_keys: list,
                   unexpected_keys: list, error_msgs: list) -> None:
    """Check the manifest before any weight is copied (runs first)."""
    value = state_dict.pop(prefix + MANIFEST_KEY, None)
    expected = set()
    if value is not None:
        expected = check_manifest(
            model, decode_manifest(value), prefix, present=set(state_dict))
    model.__dict__[_EXPECTED_MISSING] = expected


def _load_post_hook(model: nn.Module, incompatible_keys) -> None:
    """Left-out keys are restored by the build: not missing."""
    expected = model.__dict__.pop(_EXPECTED_MISSING, set())
    if expected:
        expected = {clean_key(k) for k in expected}
        missing = incompatible_keys.missing_keys
        missing[:] = [k for k in missing if clean_key(k) not in expected]


class TrainableStateDictMixin:
    """Make a model's ``state_dict`` leave out restorable frozen tensors.

    Put it first among the bases of a grounded LMM
    (``class GLaMM(TrainableStateDictMixin, BaseModel)``). The parts it
    filters are the ones loaded with
    :func:`mmgrounding.utils.hf_loading.load_pretrained_model`; see the
    module docstring for the rules. ``with full_state_dict(model):`` gives
    every tensor (exports).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_state_dict_post_hook(_save_hook)
        self.register_load_state_dict_pre_hook(_load_pre_hook)
        self.register_load_state_dict_post_hook(_load_post_hook)


@contextlib.contextmanager
def full_state_dict(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``model.state_dict()`` holds every tensor."""
    roots = [
        m for m in model.modules() if isinstance(m, TrainableStateDictMixin)
    ]
    for module in roots:
        module.__dict__[_KEEP_ALL] = True
    try:
        yield model
    finally:
        for module in roots:
            module.__dict__.pop(_KEEP_ALL, None)
