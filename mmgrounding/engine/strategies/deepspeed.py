"""DeepSpeed through mmengine's ``FlexibleRunner`` on CPU ranks too.

mmengine 0.10.7's ``DeepSpeedStrategy._setup_distributed`` goes through
``init_dist``, which calls ``torch.cuda.set_device`` first; DeepSpeed itself
selects its CPU accelerator (gloo) when no GPU is present. Without CUDA this
subclass lets ``deepspeed.init_distributed('gloo')`` create the group (and
sets ``LOCAL_SIZE`` from torchrun's ``LOCAL_WORLD_SIZE``: DeepSpeed's CPU
accelerator otherwise counts devices with ``numactl``, which ZeRO-3 calls).

mmengine's ``save_checkpoint`` / ``resume`` take the runner's hook callback
and ignore it, so ``before_save_checkpoint`` / ``after_load_checkpoint``
never run: the message hub is then pickled with ``getattr`` (``--resume``
fails under ``torch.load(weights_only=True)``) and no RNG state is saved.
This subclass calls the callback on the extra checkpoint entries (meta,
message hub; every rank calls ``save_checkpoint``) before DeepSpeed writes
them, and on the loaded ones after resuming. DeepSpeed's own
``torch.load`` runs with the few DeepSpeed classes of a ZeRO checkpoint
allowed (:func:`deepspeed_checkpoint_globals`; torch >= 2.6 loads
weights-only by default), and a plain-file ``load_from`` is refused with a
clear error. mmengine 0.10.7 registers DeepSpeed's optimizers on every
strategy construction, which fails the second time in a process; made
idempotent here. The model weights never pass
through hooks: trainable-only filtering is done by the model's
``state_dict`` (``exclude_frozen_parameters=False``).
"""
import contextlib
import os
import os.path as osp
from typing import Callable, List, Optional

import mmengine._strategy.deepspeed as mmengine_deepspeed
import torch
from mmengine._strategy import DeepSpeedStrategy
from mmengine.registry import OPTIMIZERS, STRATEGIES

_register_deepspeed_optimizers = \
    mmengine_deepspeed.register_deepspeed_optimizers


def register_deepspeed_optimizers_once() -> List[str]:
    """mmengine's ``register_deepspeed_optimizers``, idempotent.

    mmengine 0.10.7 calls it in every ``DeepSpeedStrategy.__init__`` and it
    registers without ``force``, so a second strategy in one process (a
    resume after a run, a test) fails with ``KeyError: 'DeepSpeedCPUAdam is
    already registered'``. Installed in mmengine's module (its
    ``__init__`` looks the name up there at call time).
    """
    if 'DeepSpeedCPUAdam' in OPTIMIZERS.module_dict:
        return []
    return _register_deepspeed_optimizers()


mmengine_deepspeed.register_deepspeed_optimizers = \
    register_deepspeed_optimizers_once


def deepspeed_checkpoint_globals() -> list:
    """The DeepSpeed classes its own checkpoint files pickle.

    DeepSpeed 0.15's ``TorchCheckpointEngine.load`` calls ``torch.load``
    without ``weights_only``; since torch 2.6 that means ``True``, which
    refuses the ZeRO optimizer state (its loss scaler object, the ZeRO stage
    enum, the tensor-fragment addresses) and so every ``--resume``. These
    three classes (and the dynamic loss scaler of fp16 runs) are what a ZeRO
    checkpoint holds besides tensors and plain containers; they are allowed
    for the duration of a load, nothing else is.
    """
    from deepspeed.runtime.fp16.loss_scaler import (DynamicLossScaler,
                                                    LossScaler)
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address
    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


def _safe_load():
    return torch.serialization.safe_globals(deepspeed_checkpoint_globals()) \
        if hasattr(torch.serialization, 'safe_globals') \
        else contextlib.nullcontext()


@STRATEGIES.register_module()
class GroundingDeepSpeedStrategy(DeepSpeedStrategy):
    """``DeepSpeedStrategy`` that also starts on CPU ranks."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if not torch.cuda.is_available():
            # DeepSpeed's CPU accelerator counts its "devices" from
            # LOCAL_SIZE, else by running `numactl` (ZeRO-3 asks for it);
            # set here, as _setup_distributed is skipped when the process
            # group exists already
            os.environ.setdefault(
                'LOCAL_SIZE', os.environ.get('LOCAL_WORLD_SIZE', '1'))

    def _setup_distributed(self, launcher: Optional[str] = None,
                           backend: str = 'nccl', **kwargs) -> None:
        if not torch.cuda.is_available():
            import deepspeed
            deepspeed.init_distributed(dist_backend='gloo', **kwargs)
            return
        super()._setup_distributed(launcher, backend, **kwargs)

    def save_checkpoint(self, filename: str, *, save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        extra_ckpt: Optional[dict] = None,
                        callback: Optional[Callable] = None) -> None:
        extra_ckpt = {} if extra_ckpt is None else extra_ckpt
        if callback is not None:
            callback(extra_ckpt)  # hooks edit the entries DeepSpeed stores
        super().save_checkpoint(
            filename,
            save_optimizer=save_optimizer,
            save_param_scheduler=save_param_scheduler,
            extra_ckpt=extra_ckpt)

    def load_checkpoint(self, filename: str, **kwargs) -> dict:
        """Load a DeepSpeed checkpoint directory (weights only).

        A plain file (an mmengine ``.pth``) cannot be read by DeepSpeed's
        engine (open-mmlab/mmengine#1499): refused with the way out.
        """
        if osp.isfile(filename):
            raise ValueError(
                f'load_from={filename!r} is a file; DeepSpeed loads only its '
                'checkpoint directories. Load it before DeepSpeed wraps the '
                "model: model.init_cfg=dict(type='Pretrained', checkpoint="
                f"{filename!r}) and load_from=None (tools/train.py "
                '--strategy deepspeed_* does this)')
        kwargs.pop('callback', None)
        with _safe_load():
            return super().load_checkpoint(filename, **kwargs)

    def resume(self, filename: str, *, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location='default',
               callback: Optional[Callable] = None) -> dict:
        with _safe_load():
            extra_ckpt = super().resume(
                filename,
                resume_optimizer=resume_optimizer,
                resume_param_scheduler=resume_param_scheduler,
                map_location=map_location)
        if callback is not None:
            callback(extra_ckpt)
        return extra_ckpt
