from .generation import (GenerationOutput, generate, position_ids_from_mask,
                         reference_generate, select_next_token)

__all__ = [
    'GenerationOutput', 'generate', 'reference_generate',
    'position_ids_from_mask', 'select_next_token'
]
