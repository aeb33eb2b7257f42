"""GroundingDINO (mmdet) as the phrase grounder behind a grounded LMM."""
from .bert import LocalBertModel

__all__ = ['LocalBertModel']
