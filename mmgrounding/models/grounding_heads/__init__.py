"""Grounding heads: SAM mask decoder prompted by [SEG] states (GLaMM)."""
from .sam_grounding_head import SAMGroundingHead, build_sam, check_sam_sizes

__all__ = ['SAMGroundingHead', 'build_sam', 'check_sam_sizes']
from .openseed_criterion import OPENSEED_ASSIGNER, OpenSeeDCriterion  # noqa: E402,E501
from .openseed_grounding_head import (OpenSeeDGroundingHead,  # noqa: E402
                                      tiny_openseed_head_cfg)

__all__ += [
    'OpenSeeDGroundingHead', 'OpenSeeDCriterion', 'OPENSEED_ASSIGNER',
    'tiny_openseed_head_cfg'
]
