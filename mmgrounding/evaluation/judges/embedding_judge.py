"""Offline judge: text-embedding similarity instead of GPT-4."""
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np

from mmgrounding.registry import TASK_UTILS
from ..text_encoders import build_text_encoder, cosine_matrix
from .base import BaseJudge, PhrasePair


@TASK_UTILS.register_module()
class EmbeddingJudge(BaseJudge):
    """Judge by cosine similarity of sentence embeddings (no network).

    * phrase match: ``cos(pred phrase, GT label) >= match_thr``;
    * rating: the reference answer scores 10 and the model answer
      ``10 * clip(cos(answer, reference), 0, 1)``.

    A deterministic proxy for the GPT-4 judge, for development and CI; its
    chat scores are not comparable with GPT-4's.

    Args:
        text_encoder: text-encoder config or object (default offline MiniLM).
        match_thr: similarity threshold for a phrase match (inclusive).
    """

    def __init__(self,
                 text_encoder: Union[dict, Any, None] = dict(
                     type='HFTextEncoder'),
                 match_thr: float = 0.5) -> None:
        self.text_encoder = build_text_encoder(text_encoder)
        self.match_thr = match_thr
        self.name = 'embedding:' + str(
            getattr(self.text_encoder, 'name',
                    type(self.text_encoder).__name__))

    def _pair_similarity(self, pairs: Sequence[PhrasePair]) -> np.ndarray:
        if not pairs:
            return np.zeros((0, ))
        texts = sorted({t for pair in pairs for t in pair})
        index = {t: i for i, t in enumerate(texts)}
        vectors = self.text_encoder.encode(texts)
        sims = cosine_matrix(vectors, vectors)
        return np.array([sims[index[a], index[b]] for a, b in pairs])

    def match_phrases(self, pairs: Sequence[PhrasePair]) -> List[bool]:
        """Cosine similarity >= ``match_thr``; empty phrases never match."""
        pairs = [(str(a), str(b)) for a, b in pairs]
        sims = self._pair_similarity(pairs)
        return [
            bool(s >= self.match_thr) and bool(a.strip()) and bool(b.strip())
            for s, (a, b) in zip(sims, pairs)
        ]

    def rate_answers(self,
                     items: Sequence[Dict[str, str]]) -> List[Tuple[float,
                                                                  float]]:
        """(10, 10 * clipped cosine(answer, reference)) per item."""
        sims = self._pair_similarity([(str(it['answer']),
                                       str(it['reference'])) for it in items])
        return [(10.0, float(10.0 * np.clip(s, 0.0, 1.0))) for s in sims]
