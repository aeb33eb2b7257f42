"""Few parameter groups from a ``paramwise_cfg``: what DeepSpeed can shard.

mmengine's ``DefaultOptimWrapperConstructor`` turns a ``paramwise_cfg``
(LLaVA-G's 0.1x lr for the grounding backbone and the deformable sampling
offsets / reference points) into **one parameter group per parameter**,
frozen ones included. Plain torch optimizers do not mind. DeepSpeed ZeRO
flattens and partitions every group on its own: thousands of one-tensor
groups (a 7B model) mean thousands of flat buffers and collectives, and a
group holding only frozen parameters is an empty partition.

:class:`GroupedOptimWrapperConstructor` computes exactly the same per-
parameter settings (it calls mmengine's ``add_params``), then drops the
parameters that do not train and merges the groups whose settings (``lr``,
``weight_decay``, any custom key) are equal, in first-seen order. The
optimizer then updates the same parameters with the same hyper-parameters,
in as many groups as there are distinct settings (e.g. 2 for LLaVA-G: base
lr and 0.1x). ``tools/train.py --strategy deepspeed_*`` selects it whenever
the config has a ``paramwise_cfg``; it works under every other wrapper too.
"""
import inspect
from typing import Dict, List, Tuple

from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn

from mmgrounding.registry import (OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS,
                                  OPTIMIZERS)


def merge_param_groups(groups: List[dict]) -> List[dict]:
    """Merge per-parameter groups with equal settings; drop frozen tensors.

    Args:
        groups: ``[{'params': [p], 'lr': ..., ...}, ...]`` as produced by
            ``DefaultOptimWrapperConstructor.add_params``.

    Returns:
        One group per distinct setting (all keys but ``params``), in the
        order the settings first occur, holding only ``requires_grad``
        parameters; settings with no trainable parameter are left out.
    """
    merged: Dict[Tuple, dict] = {}
    for group in groups:
        params = [p for p in group['params'] if p.requires_grad]
        if not params:
            continue
        settings = {k: v for k, v in group.items() if k != 'params'}
        key = tuple(sorted((k, repr(v)) for k, v in settings.items()))
        if key not in merged:
            merged[key] = dict(settings, params=[])
        merged[key]['params'].extend(params)
    return list(merged.values())


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class GroupedOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` with merged parameter groups (see
    the module docstring). Without ``paramwise_cfg`` it builds the optimizer
    on the trainable parameters, in one group."""

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if hasattr(model, 'module'):
            model = model.module
        optim_wrapper_cfg = self.optim_wrapper_cfg.copy()
        optim_wrapper_cfg.setdefault('type', 'OptimWrapper')
        optimizer_cfg = self.optimizer_cfg.copy()
        optimizer_cls = optimizer_cfg['type']
        if isinstance(optimizer_cls, str):
            with OPTIMIZERS.switch_scope_and_registry(None) as registry:
                optimizer_cls = registry.get(optimizer_cls)
        first_arg = next(iter(inspect.signature(optimizer_cls).parameters))
        if self.paramwise_cfg:
            groups: List[dict] = []
            self.add_params(groups, model)
            optimizer_cfg[first_arg] = merge_param_groups(groups)
        else:
            optimizer_cfg[first_arg] = [
                p for p in model.parameters() if p.requires_grad
            ]
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(
            optim_wrapper_cfg, default_args=dict(optimizer=optimizer))
