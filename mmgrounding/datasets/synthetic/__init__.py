"""The synthetic grounding world: coloured shapes, referring expressions,
grounded captions and a tiny tokenizer, written in the official annotation
formats of GLaMM and LLaVA-Grounding (see ``docs/formats.md``).

Importing this package is cheap and registers nothing; the tokenizer module
imports ``tokenizers``/``transformers`` only when called.
"""
from .generate import generate_world, load_world_info, split_bounds
from .scene import CATEGORY_IDS, COLORS, SHAPES, SIZES
from .semseg import (SEMSEG_CLASSES, SEMSEG_PALETTE, semantic_label_map,
                     write_semseg_split)
from .tokenizer import SPECIAL_TOKENS, build_tokenizer, train_tokenizer

__all__ = [
    'generate_world', 'load_world_info', 'split_bounds', 'build_tokenizer',
    'train_tokenizer', 'SPECIAL_TOKENS', 'COLORS', 'SHAPES', 'SIZES',
    'CATEGORY_IDS', 'SEMSEG_CLASSES', 'SEMSEG_PALETTE', 'semantic_label_map',
    'write_semseg_split'
]
