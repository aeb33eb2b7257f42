from .deepspeed import GroundingDeepSpeedStrategy
from .fsdp import (DECODER_LAYERS, GroundingFSDPStrategy,
                   grounded_lmm_wrap_policy)

__all__ = ['GroundingFSDPStrategy', 'grounded_lmm_wrap_policy',
           'DECODER_LAYERS', 'GroundingDeepSpeedStrategy']
