from .base import Answer, BaseGroundedLMM, PromptSlot
from .glamm import GLaMM

__all__ = ['BaseGroundedLMM', 'PromptSlot', 'Answer', 'GLaMM']
