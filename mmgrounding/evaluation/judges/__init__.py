"""Judges for Grounding-Bench: an LLM over HTTP or offline embeddings."""
from .base import BaseJudge, parse_score_pair, parse_yes_no
from .embedding_judge import EmbeddingJudge
from .openai_judge import JudgeError, OpenAIJudge

__all__ = [
    'BaseJudge', 'EmbeddingJudge', 'OpenAIJudge', 'JudgeError',
    'parse_score_pair', 'parse_yes_no'
]
