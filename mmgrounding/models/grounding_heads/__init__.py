"""Grounding heads: SAM and SAM2 mask decoders prompted by grounding-token
states (GLaMM), the OpenSeeD set-prediction head (LLaVA-G)."""
from .sam_grounding_head import SAMGroundingHead, build_sam, check_sam_sizes

__all__ = ['SAMGroundingHead', 'build_sam', 'check_sam_sizes']
from .openseed_criterion import OPENSEED_ASSIGNER, OpenSeeDCriterion  # noqa: E402,E501
from .openseed_grounding_head import (OpenSeeDGroundingHead,  # noqa: E402
                                      tiny_openseed_head_cfg)

__all__ += [
    'OpenSeeDGroundingHead', 'OpenSeeDCriterion', 'OPENSEED_ASSIGNER',
    'tiny_openseed_head_cfg'
]
from .sam2_grounding_head import (SAM2GroundingHead, build_sam2,  # noqa: E402
                                  check_sam2_sizes)

__all__ += ['SAM2GroundingHead', 'build_sam2', 'check_sam2_sizes']
