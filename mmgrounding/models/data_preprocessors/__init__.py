"""Data preprocessors: token padding and per-encoder image views."""
from .grounding_data_preprocessor import (SAM_MEAN, SAM_STD,
                                          GroundingDataPreprocessor)

__all__ = ['GroundingDataPreprocessor', 'SAM_MEAN', 'SAM_STD']
