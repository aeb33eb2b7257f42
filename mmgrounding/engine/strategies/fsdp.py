"""FSDP (torch FSDP1) for grounded LMMs through mmengine's ``FlexibleRunner``.

:class:`GroundingFSDPStrategy` is mmengine 0.10.7's ``FSDPStrategy`` with the
defects found with torch 2.13 (``shared/reference/scale_out.md``)
fixed:

* resume called ``FSDP.optim_state_dict_to_load(state_dict, model, optim)``
  positionally, but torch's signature is ``(model, optim,
  optim_state_dict)`` -> ``TypeError: unhashable type: 'dict'``; keywords
  here;
* ``device_id=int(LOCAL_RANK)`` fails without an accelerator; on CPU the
  wrapper gets ``device_id=torch.device('cpu')``;
* ``state_dict_cfg='full'`` hard-codes ``offload_to_cpu=True``, which
  crashes rank 0 on CPU ranks (tensors already live on the CPU); it is
  ``False`` there (on GPUs it stays ``True``);
* ``clip_grad=dict(max_norm=...)`` clipped each rank's gradient shard by its
  own norm (``torch.nn.utils.clip_grad_norm_`` on sharded gradients); it
  uses ``FSDP.clip_grad_norm_``, the norm over all ranks, here.

:func:`grounded_lmm_wrap_policy` is the LoRA-aware auto-wrap policy (the
rule of peft's ``fsdp_auto_wrap_policy``, without needing the model at
config time): an FSDP1 flat parameter holds one dtype, and peft keeps LoRA
adapters in fp32 while a 7B decoder is bf16; the trainable embedding rows and
LM head are fp32 too. So every leaf of the causal LM with trainable weights
(LoRA A/B, ``embed_tokens``, ``lm_head``) gets its own unit, then every
decoder layer (its remaining frozen bf16 weights) gets one, and
low-precision LM leaves outside decoder layers (the final norm) get their
own, so that the root unit (vision tower, projectors, SAM: fp32) holds a
single dtype. Leaves outside the LM stay in the root: SAM reads its token
embeddings as ``.weight`` without calling them, which a unit of their own
would break.
"""
from typing import Iterable, Optional, Set

import functools

import torch
from mmengine.registry import FUNCTIONS, STRATEGIES
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp import (FullOptimStateDictConfig,
                                    FullStateDictConfig)

try:
    from mmengine._strategy import FSDPStrategy
except ImportError:  # pragma: no cover - torch without FSDP
    FSDPStrategy = None

#: Decoder layer classes of the supported language models.
DECODER_LAYERS = ('LlamaDecoderLayer', 'MistralDecoderLayer',
                  'Qwen2DecoderLayer', 'PhiDecoderLayer')

# The policy is called on the root first (recurse=True), then bottom-up; on
# the root call the ids of the modules inside the causal LM(s) and inside
# their decoder layers are indexed. Leaves are wrapped on their own only
# inside the LM, where every leaf is run through its forward (Linear,
# Embedding, LoRA A/B, norms); elsewhere (SAM's iou/mask token embeddings)
# weights are read as ``.weight`` directly and a separate FSDP unit would
# hand out the flat shard.
_INDEX: dict = dict(all=set(), lm=set(), layers=set())


def _is_layer(module: nn.Module, names: Iterable[str]) -> bool:
    return type(module).__name__ in names


def _index(root: nn.Module, layer_names: Iterable[str]) -> None:
    lm: Set[int] = set()
    layers: Set[int] = set()
    for module in root.modules():
        if type(module).__name__.endswith('ForCausalLM'):
            lm.update(id(m) for m in module.modules())
        if _is_layer(module, layer_names):
            layers.update(id(m) for m in module.modules() if m is not module)
    _INDEX.update(all={id(m) for m in root.modules()}, lm=lm, layers=layers)


@FUNCTIONS.register_module()
def grounded_lmm_wrap_policy(module: nn.Module,
                             recurse: bool,
                             nonwrapped_numel: int,
                             layer_cls: Iterable[str] = DECODER_LAYERS,
                             min_num_params: int = 0) -> bool:
    """FSDP1 ``auto_wrap_policy``: which modules get their own unit.

    Args:
        module, recurse, nonwrapped_numel: FSDP's policy arguments.
        layer_cls: class names of the transformer layers to wrap.
        min_num_params: leaves below this many parameters are not wrapped
            on their own (0: every trainable / low-precision leaf).
    """
    layer_cls = tuple(layer_cls)
    if recurse:
        if id(module) not in _INDEX['all']:
            _index(module, layer_cls)  # the root: first call
        return True
    if _is_layer(module, layer_cls):
        return True
    params = list(module.parameters(recurse=False))
    if not params or next(module.children(), None) is not None \
            or id(module) not in _INDEX['lm']:
        return False
    if sum(p.numel() for p in params) < min_num_params:
        return False
    if any(p.requires_grad for p in params):
        return True  # LoRA A/B, embed_tokens, lm_head
    low_precision = any(p.dtype != torch.float32 for p in params)
    return low_precision and id(module) not in _INDEX['layers']


def fsdp_clip_grad_norm(model: nn.Module, params, max_norm: float,
                        norm_type: float = 2.0, **kwargs) -> torch.Tensor:
    """``clip_grad_norm_`` for an FSDP root module (a collective).

    mmengine's ``OptimWrapper`` clips with ``torch.nn.utils.clip_grad_norm_``
    over the parameters it sees; under FSDP those hold only this rank's
    gradient shard, so each rank would compute the norm of its own shard and
    clip by a different factor. ``FSDP.clip_grad_norm_`` reduces the norm
    over all ranks first (torch's documented way). ``params`` (the wrapper's
    list) is ignored: the root module knows all of them.
    """
    return model.clip_grad_norm_(max_norm, norm_type)


if FSDPStrategy is not None:

    @STRATEGIES.register_module()
    class GroundingFSDPStrategy(FSDPStrategy):
        """mmengine's ``FSDPStrategy`` that resumes, runs on CPU ranks and
        saves full state dicts there (see the module docstring).

        Config: ``runner_type='FlexibleRunner'``, ``strategy=dict(
        type='GroundingFSDPStrategy', state_dict_cfg='full',
        model_wrapper=dict(auto_wrap_policy=dict(
        type='grounded_lmm_wrap_policy'), use_orig_params=True))``.
        ``use_orig_params=True`` is needed: units mix frozen and trainable
        parameters and the optimizer sees only the trainable ones.
        """

        def __init__(self, *, model_wrapper: Optional[dict] = None,
                     **kwargs) -> None:
            super().__init__(model_wrapper=model_wrapper, **kwargs)
            if not torch.cuda.is_available():
                wrapper = dict(self.model_wrapper or {})
                wrapper.setdefault('device_id', torch.device('cpu'))
                self.model_wrapper = wrapper

        def _init_state_dict_cfg(self, state_dict_cfg) -> None:
            super()._init_state_dict_cfg(state_dict_cfg)
            if state_dict_cfg == 'full' and not torch.cuda.is_available():
                self.state_dict_config = FullStateDictConfig(
                    rank0_only=True, offload_to_cpu=False)
                self.optim_state_dict_config = FullOptimStateDictConfig(
                    rank0_only=True, offload_to_cpu=False)

        def _setup_distributed(self, launcher: str = 'pytorch',
                               backend: str = 'nccl', **kwargs) -> None:
            """On CPU ranks: a gloo group (mmengine's ``init_dist`` calls
            ``torch.cuda.set_device``)."""
            if not torch.cuda.is_available():
                from mmgrounding.engine.distributed import \
                    init_cpu_process_group
                init_cpu_process_group()
                return
            super()._setup_distributed(launcher, backend, **kwargs)

        def prepare(self, model, *, optim_wrapper=None, **kwargs):
            """mmengine's ``prepare``, then gradient-norm clipping over the
            whole sharded model (see :func:`fsdp_clip_grad_norm`)."""
            prepared = super().prepare(
                model, optim_wrapper=optim_wrapper, **kwargs)
            wrappers = getattr(self, 'optim_wrapper', None)
            wrappers = getattr(wrappers, 'optim_wrappers', None) or (
                {} if wrappers is None else {'': wrappers})
            for wrapper in wrappers.values():
                if getattr(wrapper, 'clip_func', None) is \
                        torch.nn.utils.clip_grad_norm_:
                    wrapper.clip_func = functools.partial(
                        fsdp_clip_grad_norm, self.model)
            return prepared

        def load_optim_state_dict(self, state_dict: dict) -> None:
            """Shard a saved optimizer state (keywords: torch's order is
            ``(model, optim, optim_state_dict)``)."""
            optim_state_dict = FSDP.optim_state_dict_to_load(
                model=self.model,
                optim=self.optim_wrapper.optimizer,
                optim_state_dict=state_dict)
            self.optim_wrapper.load_state_dict(optim_state_dict)

else:  # pragma: no cover
    GroundingFSDPStrategy = None

__all__ = ['GroundingFSDPStrategy', 'grounded_lmm_wrap_policy',
           'DECODER_LAYERS']
