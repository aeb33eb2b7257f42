"""Detect-then-describe: an mmdet detector proposes the regions, a grounded
LMM (GLaMM) captions each one through its ``<bbox>`` region prompt."""
from .dense_caption_dataset import DenseRegionCaptionDataset
from .detect_then_describe import DetectThenDescribe, select_detections
from .metrics import DenseRegionCaptionMetric, match_boxes

__all__ = [
    'DenseRegionCaptionDataset', 'DetectThenDescribe', 'select_detections',
    'DenseRegionCaptionMetric', 'match_boxes'
]
