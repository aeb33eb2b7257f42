"""Tiny tokenizers and model configs for tests (no downloads)."""
from .models import (GLAMM_LORA, TINY_LLAMA, VICUNA_7B, build_tiny_llama,
                     tiny_glamm_cfg, tiny_llama_cfg, tiny_sam_cfg)
from .samples import make_glamm_batch
from .tokenizer import (GLAMM_TOKENS, LLAVA_G_TOKENS, MODEL_TOKENS,
                        build_tiny_tokenizer)

__all__ = [
    'build_tiny_tokenizer', 'build_tiny_llama', 'tiny_llama_cfg',
    'tiny_glamm_cfg', 'tiny_sam_cfg', 'make_glamm_batch', 'TINY_LLAMA',
    'VICUNA_7B', 'GLAMM_LORA', 'GLAMM_TOKENS', 'LLAVA_G_TOKENS', 'MODEL_TOKENS'
]
