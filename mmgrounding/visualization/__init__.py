from .grounding_visualizer import PALETTE, GroundingVisualizer

__all__ = ['GroundingVisualizer', 'PALETTE']
