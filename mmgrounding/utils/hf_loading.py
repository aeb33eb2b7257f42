"""Load Hugging Face models and tokenizers from local directories only, and
record where their weights came from.

Two jobs, one seam:

* **No hub access, ever.** Every ``from_pretrained`` of mmgrounding goes
  through :func:`from_pretrained_local`: the path must be an existing local
  directory, otherwise a :class:`PretrainedPathError` names the config key and
  the path (a hub id such as ``'lmsys/vicuna-7b-v1.5'`` is refused before
  transformers sees it, so nothing reaches the network even without offline
  mode); ``local_files_only=True`` is always passed. :func:`set_offline_mode`
  is what ``tools/train.py`` and ``tools/test.py`` call before importing
  transformers.
* **Provenance.** :func:`load_pretrained_model` additionally tags the loaded
  model with a :class:`PretrainedSource`: the directory and a fingerprint of
  every tensor *as it came from the directory* (shape, dtype and a strided
  sample of values, see :func:`tensor_fingerprint`). The model's
  ``state_dict`` (:mod:`mmgrounding.models.utils.trainable_state`) uses it to
  leave out frozen tensors that still equal their source, and to refuse a
  checkpoint whose source is not the one the model was built from.
"""
import hashlib
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional, Tuple

import torch
from torch import nn

#: Environment variables that put huggingface_hub / transformers offline.
OFFLINE_ENV = {'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}

#: Attribute of a loaded ``PreTrainedModel`` holding its PretrainedSource.
SOURCE_ATTR = '_mmgrounding_pretrained_source'

#: Values sampled per tensor by :func:`tensor_fingerprint`.
FINGERPRINT_SAMPLES = 256


class PretrainedPathError(FileNotFoundError):
    """A ``pretrained_model_name_or_path`` that is not a local directory."""


def set_offline_mode() -> None:
    """Put huggingface_hub and transformers offline for this process.

    Must run before ``transformers`` / ``huggingface_hub`` are imported: both
    read the variables once, at import time.
    """
    os.environ.update(OFFLINE_ENV)


def check_local_dir(path: Any, key: str) -> str:
    """Return ``path`` if it is an existing local directory, else raise.

    Args:
        path: the configured ``pretrained_model_name_or_path``.
        key: the config key it came from, for the message (e.g.
            ``'HFCausalLM.pretrained_model_name_or_path'``).

    Raises:
        PretrainedPathError: naming ``key`` and ``path``; a hub-style id
            (``org/name``) gets a hint on how to fetch it once.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise PretrainedPathError(
            f'{key} must be a local directory path, got {path!r}')
    path = os.fspath(path)
    if osp.isdir(path):
        return path
    if osp.exists(path):
        reason = 'is a file, not a model directory'
    else:
        reason = 'does not exist'
    hint = ''
    parts = path.split('/')
    if not osp.isabs(path) and len(parts) == 2 and all(parts):
        hint = (f' If {path!r} is meant as a Hugging Face hub id: '
                'mmgrounding never downloads; fetch it once (e.g. '
                f'`huggingface-cli download {path} --local-dir '
                f'checkpoints/{parts[1]}`) and set {key} to that directory.')
    raise PretrainedPathError(
        f'{key}: {path!r} {reason} (resolved to {osp.abspath(path)!r}); '
        f'models and tokenizers are only read from local directories.{hint}')


def from_pretrained_local(loader: Any, path: Any, key: str, **kwargs) -> Any:
    """``loader.from_pretrained(path, local_files_only=True, **kwargs)``.

    Args:
        loader: any class with ``from_pretrained`` (``AutoTokenizer``,
            ``AutoConfig``, ``SamModel`` ...).
        path: local directory (checked with :func:`check_local_dir`).
        key: config key of ``path`` for error messages.
        **kwargs: passed on; ``local_files_only=False`` is refused.
    """
    check_local_dir(path, key)
    if kwargs.get('local_files_only', True) is not True:
        raise ValueError(f'{key}: local_files_only=False is not allowed; '
                         'mmgrounding never downloads')
    kwargs['local_files_only'] = True
    return loader.from_pretrained(path, **kwargs)


# ----------------------------------------------------------------- provenance
def tensor_fingerprint(tensor: torch.Tensor,
                       num_samples: int = FINGERPRINT_SAMPLES) -> str:
    """A cheap, device-independent identity of a tensor's values.

    sha1 of the shape, the dtype and ``num_samples`` values taken at evenly
    spaced positions of the flattened tensor, each shifted by a varying
    offset inside its stride so that the samples do not all fall in one
    column of a matrix; the bytes are compared exactly (no float tolerance).
    Cost: one gather of ``num_samples`` values, so fingerprinting a 7B model
    reads a few hundred kB. It detects any change that touches more than a
    tiny fraction of a tensor (a merged LoRA update, a fine-tuned or another
    base checkpoint); it is not a cryptographic checksum of every value.

    Returns:
        16 hex digits; ``'meta:...'`` for a meta tensor (no values).
    """
    tensor = tensor.detach()
    head = f'{tuple(tensor.shape)}|{tensor.dtype}'.encode()
    if tensor.is_meta:
        return 'meta:' + hashlib.sha1(head).hexdigest()[:11]
    digest = hashlib.sha1(head)
    flat = tensor.reshape(-1)
    numel = flat.numel()
    if numel:
        count = min(num_samples, numel)
        stride = numel // count
        pos = torch.arange(count, device=flat.device)
        idx = pos * stride + (pos * 40503) % stride
        idx = torch.cat([idx, idx.new_tensor([numel - 1])])  # + the last
        sample = flat[idx].cpu().contiguous()  # one device->host copy
        digest.update(sample.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def combine_fingerprints(fingerprints: Dict[str, str]) -> str:
    """One fingerprint for a set of named tensor fingerprints."""
    digest = hashlib.sha1()
    for name in sorted(fingerprints):
        digest.update(f'{name}={fingerprints[name]};'.encode())
    return digest.hexdigest()[:16]


def named_state_tensors(
        module: nn.Module) -> Iterator[Tuple[str, torch.Tensor, bool]]:
    """``(name, tensor, trained)`` of every entry of ``state_dict``.

    Parameters (tied ones under every name) and persistent buffers, named as
    in the module's ``state_dict``. ``trained``: a parameter that requires
    grad, or a buffer of a module that owns one (e.g. the running statistics
    of a trained BatchNorm): state that changes during training.
    """
    for mod_name, mod in module.named_modules(remove_duplicate=False):
        prefix = f'{mod_name}.' if mod_name else ''
        owns_trained = False
        for name, param in mod._parameters.items():
            if param is not None:
                owns_trained = owns_trained or param.requires_grad
                yield prefix + name, param, param.requires_grad
        for name, buf in mod._buffers.items():
            if buf is not None and name not in \
                    mod._non_persistent_buffers_set:
                yield prefix + name, buf, owns_trained


@dataclass
class PretrainedSource:
    """Where a loaded model's weights came from.

    Attributes:
        key: config key of the path (``'HFCausalLM.pretrained_...'``).
        path: the directory as configured.
        realpath: the directory with links and ``..`` resolved.
        tensors: state-dict name (as loaded) -> :func:`tensor_fingerprint`.
        fingerprint: :func:`combine_fingerprints` of ``tensors``.
    """
    key: str
    path: str
    realpath: str
    tensors: Dict[str, str] = field(default_factory=dict)
    fingerprint: str = ''

    def describe(self) -> str:
        return f'{self.path!r} (fingerprint {self.fingerprint})'


def record_pretrained_source(model: nn.Module, path: str,
                             key: str) -> PretrainedSource:
    """Fingerprint ``model`` as it is now and tag it with the source.

    Call right after ``from_pretrained``, before anything changes a weight
    (resizing, LoRA, casts). Meta tensors are not fingerprinted (they hold
    no values and can never be left out of a checkpoint).
    """
    tensors = {
        name: tensor_fingerprint(t)
        for name, t, _ in named_state_tensors(model) if not t.is_meta
    }
    source = PretrainedSource(
        key=key,
        path=os.fspath(path),
        realpath=osp.realpath(path),
        tensors=tensors,
        fingerprint=combine_fingerprints(tensors))
    object.__setattr__(model, SOURCE_ATTR, source)
    return source


def pretrained_source(module: nn.Module) -> Optional[PretrainedSource]:
    """The :class:`PretrainedSource` a module was tagged with, if any."""
    return module.__dict__.get(SOURCE_ATTR)


def load_pretrained_model(loader: Any, path: Any, key: str,
                          **kwargs) -> nn.Module:
    """Load a model from a local directory and record its source.

    :func:`from_pretrained_local` followed by
    :func:`record_pretrained_source`.
    """
    model = from_pretrained_local(loader, path, key, **kwargs)
    record_pretrained_source(model, path, key)
    return model
