"""Prompt encoders: visual prompts (clicks, boxes, scribbles) -> LLM embeds."""
from .semantic_sam_checkpoint import (INTERACTIVE_DROPPED_KEYS,
                                      INTERACTIVE_PREFIX,
                                      convert_semantic_sam_prompt_encoder)
from .semantic_sam_prompt_encoder import (PROMPT_TYPE_IDS, SCRIBBLE_MODES,
                                          SemanticSAMPromptEncoder,
                                          tiny_semantic_sam_prompt_encoder_cfg)

__all__ = [
    'SemanticSAMPromptEncoder', 'tiny_semantic_sam_prompt_encoder_cfg',
    'PROMPT_TYPE_IDS', 'SCRIBBLE_MODES', 'convert_semantic_sam_prompt_encoder',
    'INTERACTIVE_PREFIX', 'INTERACTIVE_DROPPED_KEYS'
]
