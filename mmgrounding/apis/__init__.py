"""High-level APIs: image + prompt (+ boxes) -> grounded answer."""
from .grounding_inferencer import GroundingInferencer

__all__ = ['GroundingInferencer']
