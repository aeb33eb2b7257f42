"""Text encoders used to compare phrases (GCG recall, Grounding-Bench)."""
from .hf_text_encoder import (HFTextEncoder, build_text_encoder,
                              cosine_matrix, find_packaged_minilm)

__all__ = [
    'HFTextEncoder', 'build_text_encoder', 'cosine_matrix',
    'find_packaged_minilm'
]
