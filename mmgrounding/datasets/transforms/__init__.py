"""Grounding transforms: load masks, sample visual prompts, format, tokenise,
pack, paint Set-of-Mark marks. Importing this module registers them in
``mmgrounding.registry.TRANSFORMS``."""
from .conversation import FormatGroundedConversation
from .loading import LoadGroundingAnnotations
from .packing import PackGroundingInputs
from .paint_marks import PaintMarks
from .templates import TASK_TEMPLATES
from .tokenization import IGNORE_INDEX, TokenizeConversation
from .visual_prompts import SampleVisualPrompts

__all__ = [
    'FormatGroundedConversation', 'LoadGroundingAnnotations',
    'PackGroundingInputs', 'TokenizeConversation', 'SampleVisualPrompts',
    'TASK_TEMPLATES', 'IGNORE_INDEX', 'PaintMarks'
]
