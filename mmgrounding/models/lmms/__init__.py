from .base import Answer, BaseGroundedLMM, PromptSlot
from .glamm import GLaMM
from .llava_grounding import LLaVAGrounding

__all__ = ['BaseGroundedLMM', 'PromptSlot', 'Answer', 'GLaMM', 'LLaVAGrounding']
