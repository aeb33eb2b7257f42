"""High-level APIs: image + prompt (+ boxes) -> grounded answer."""
from .grounding_inferencer import GroundingInferencer
from .mixing import build_grounding_inferencer, build_mmdet_detector

__all__ = [
    'GroundingInferencer', 'build_grounding_inferencer',
    'build_mmdet_detector'
]
