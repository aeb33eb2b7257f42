"""Vision towers: transformers CLIP (or any ViT-like AutoModel)."""
from .hf_utils import build_hf_config, build_hf_vision_model
from .hf_vision_encoder import CLIP_MEAN, CLIP_STD, HFVisionEncoder

__all__ = [
    'HFVisionEncoder', 'build_hf_config', 'build_hf_vision_model',
    'CLIP_MEAN', 'CLIP_STD'
]
