"""Projections: vision -> language (mm_projector), hidden -> prompt."""
from .mlp_projector import MLPProjector

__all__ = ['MLPProjector']
