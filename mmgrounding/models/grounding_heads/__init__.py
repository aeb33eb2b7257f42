"""Grounding heads: SAM mask decoder prompted by [SEG] states (GLaMM)."""
from .sam_grounding_head import SAMGroundingHead, build_sam, check_sam_sizes

__all__ = ['SAMGroundingHead', 'build_sam', 'check_sam_sizes']
