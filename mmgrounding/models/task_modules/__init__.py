"""Task utilities (match costs) of mmgrounding, in its TASK_UTILS."""
from .seg_token_cost import SameImageCost, SegTokenFocalCost

__all__ = ['SegTokenFocalCost', 'SameImageCost']
