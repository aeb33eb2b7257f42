"""DeepSpeed through mmengine's ``FlexibleRunner`` on CPU ranks too.

mmengine 0.10.7's ``DeepSpeedStrategy._setup_distributed`` goes through
``init_dist``, which calls ``torch.cuda.set_device`` first; DeepSpeed itself
selects its CPU accelerator (gloo) when no GPU is present. Without CUDA this
subclass lets ``deepspeed.init_distributed('gloo')`` create the group.
Everything else is mmengine's (checkpoints are DeepSpeed directories; hooks'
``before_save_checkpoint`` / ``after_load_checkpoint`` are not called, so
trainable-only filtering is done by the model's ``state_dict``).
"""
from typing import Optional

import torch
from mmengine._strategy import DeepSpeedStrategy
from mmengine.registry import STRATEGIES


@STRATEGIES.register_module()
class GroundingDeepSpeedStrategy(DeepSpeedStrategy):
    """``DeepSpeedStrategy`` that also starts on CPU ranks."""

    def _setup_distributed(self, launcher: Optional[str] = None,
                           backend: str = 'nccl', **kwargs) -> None:
        if not torch.cuda.is_available():
            import deepspeed
            deepspeed.init_distributed(dist_backend='gloo', **kwargs)
            return
        super()._setup_distributed(launcher, backend, **kwargs)
