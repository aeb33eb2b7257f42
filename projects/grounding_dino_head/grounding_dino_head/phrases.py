"""Grounded phrases <-> GroundingDINO text prompts and detections.

GroundingDINO takes a caption and, per entity, the character spans of its
tokens (``tokens_positive``, mmdet ``get_positive_map``); with
``custom_entities=True`` and ``tokens_positive`` given, no NER runs (mmdet's
NER path would download NLTK data). Phrases are joined with ``". "``: the
``.`` is one of GroundingDINO's sub-sentence separators, so each phrase is
encoded on its own, as in training.
"""
from typing import List, Sequence, Tuple

import torch
from mmengine.structures import InstanceData

from mmgrounding.structures import GroundingDataError

#: Separator between phrases in the text prompt.
PHRASE_SEPARATOR = '. '


def phrases_to_prompt(phrases: Sequence[str],
                      record=None,
                      file=None) -> Tuple[str, List[List[List[int]]]]:
    """Text prompt and per-phrase ``tokens_positive`` char spans.

    ``['red circle', 'the square']`` -> ``('red circle. the square',
    [[[0, 10]], [[12, 22]]])``. Surrounding whitespace is dropped and inner
    runs collapse to one space before the spans are taken.

    Raises:
        GroundingDataError: no phrase, a phrase that is not a string or is
            empty after stripping (field ``phrases``; ``record`` / ``file``
            name the sample in the message).
    """
    if not phrases:
        raise GroundingDataError('no phrase to ground', file=file,
                                 record=record, field='phrases',
                                 value=list(phrases))
    text, spans = '', []
    for k, phrase in enumerate(phrases):
        if not isinstance(phrase, str) or not phrase.split():
            raise GroundingDataError(
                f'phrase {k} must be a non-empty string', file=file,
                record=record, field=f'phrases[{k}]', value=phrase)
        if text:
            text += PHRASE_SEPARATOR
        start = len(text)
        text += ' '.join(phrase.split())
        spans.append([[start, len(text)]])
    return text, spans


def top_box_per_phrase(instances: InstanceData,
                       num_phrases: int) -> InstanceData:
    """The highest-scoring detection of each phrase, in phrase order.

    Args:
        instances: GroundingDINO ``pred_instances`` (``bboxes`` [N, 4],
            ``scores`` [N], ``labels`` [N] = entity index).
        num_phrases: entities of the prompt; labels outside
            ``[0, num_phrases)`` raise.

    Returns:
        ``InstanceData`` with one row per phrase that has a detection
        (``bboxes`` [M, 4], ``scores`` [M], ``labels`` [M] = phrase index,
        increasing); ties keep the detector's order.
    """
    labels = instances.labels
    if len(labels) and (labels.min() < 0 or labels.max() >= num_phrases):
        raise ValueError(
            f'top_box_per_phrase: labels {labels.tolist()} outside '
            f'[0, {num_phrases})')
    keep = []
    for k in range(num_phrases):
        idx = torch.nonzero(labels == k).flatten()
        if len(idx):
            best = torch.argmax(instances.scores[idx])  # first max wins
            keep.append(int(idx[best]))
    return instances[torch.tensor(keep, dtype=torch.long)]
