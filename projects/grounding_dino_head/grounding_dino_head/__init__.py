"""GroundingDINO (mmdet) as the phrase grounder behind a grounded LMM: the
LMM's grounded phrases become GroundingDINO's ``text`` + ``tokens_positive``;
its top box per phrase is the grounding output."""
from .bert import LocalBertEncoder, LocalBertModel
from .phrase_grounder import GroundingDINOPhraseGrounder, answer_phrases
from .phrases import phrases_to_prompt, top_box_per_phrase

__all__ = [
    'LocalBertEncoder', 'LocalBertModel', 'GroundingDINOPhraseGrounder',
    'answer_phrases', 'phrases_to_prompt', 'top_box_per_phrase'
]
