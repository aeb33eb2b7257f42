"""Tiny tokenizers and model configs for tests (no downloads)."""
from .models import (CLIP_L_336, GLAMM_LORA, SAM_VIT_H, TINY_LLAMA, VICUNA_7B,
                     build_tiny_llama, glamm_7b_cfg, tiny_glamm_cfg,
                     tiny_llama_cfg, tiny_sam_cfg)
from .samples import make_glamm_batch
from .scripts import (TrainedRun, evaluate_config, load_script, read_metrics,
                      run_tool, train_config)
from .tokenizer import (GLAMM_TOKENS, LLAVA_G_TOKENS, MODEL_TOKENS,
                        build_tiny_tokenizer)

__all__ = [
    'build_tiny_tokenizer', 'build_tiny_llama', 'tiny_llama_cfg',
    'tiny_glamm_cfg', 'tiny_sam_cfg', 'make_glamm_batch', 'load_script', 'run_tool', 'read_metrics',
    'train_config', 'evaluate_config', 'TrainedRun', 'TINY_LLAMA',
    'VICUNA_7B', 'GLAMM_LORA', 'CLIP_L_336', 'SAM_VIT_H', 'glamm_7b_cfg', 'GLAMM_TOKENS', 'LLAVA_G_TOKENS', 'MODEL_TOKENS'
]
