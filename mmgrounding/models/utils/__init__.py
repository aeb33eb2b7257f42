from .generation import (GenerationOutput, generate, reference_generate,
                         select_next_token)
from .hf import build_hf_config, masked_rows, position_ids_from_mask
from .samples import sample_name

__all__ = [
    'GenerationOutput', 'generate', 'reference_generate',
    'position_ids_from_mask', 'select_next_token', 'build_hf_config',
    'masked_rows',
    'sample_name'
]
