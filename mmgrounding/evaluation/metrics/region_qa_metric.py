"""Region-question accuracy: the attribute word of an answer about an
``<obj>`` (LLaVA-G stage 3, GVC-R questions)."""
import re
from typing import Any, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmgrounding.registry import METRICS
from mmgrounding.structures import GroundingDataError
from mmgrounding.datasets.synthetic.scene import COLORS, SHAPES, SIZES
from mmgrounding.structures.markup import strip_markup
from ..functional.sample_utils import get_field
from ..functional.table import log_metric_table

#: Question type -> regular expression on the (lower-cased) question. The
#: first type that matches wins; a question matching none is not scored.
DEFAULT_QUESTION_PATTERNS: Dict[str, str] = {
    'color': r'\bcolou?r\b',
    'shape': r'\bshape\b',
    'size': r'\bsmall or large\b|\blarge or small\b|\bsize\b',
}
#: Question type -> the attribute words an answer may give (the synthetic
#: world's colours, shapes and sizes, ``datasets/synthetic/scene.py``).
DEFAULT_VOCABULARY: Dict[str, Sequence[str]] = {
    'color': tuple(COLORS),
    'shape': tuple(SHAPES),
    'size': tuple(SIZES),
}


def normalise_answer(text: str) -> List[str]:
    """Words of an answer: grounding markup removed (every ``<tag>``,
    ``<seg>`` and ``[SEG]``: ``strip_markup``), lower-cased, every character that is not
    a letter made a space, split on whitespace.

    ``"It is <g_s>Purple<g_e> <seg>."`` -> ``['it', 'is', 'purple']``.
    """
    text = strip_markup(str(text), 'llava_g', extra_tokens=('[SEG]', ))
    return re.sub(r'[^a-z]+', ' ', text.lower()).split()


def attribute_words(text: str, vocabulary: Sequence[str]) -> List[str]:
    """The distinct ``vocabulary`` words of ``text`` (normalised), in order
    of first appearance."""
    vocab = set(vocabulary)
    seen: List[str] = []
    for word in normalise_answer(text):
        if word in vocab and word not in seen:
            seen.append(word)
    return seen


@METRICS.register_module()
class RegionQAAccuracyMetric(BaseMetric):
    """Exact-match accuracy of the attribute word per question type.

    Each sample is one question about one or more ``<obj>`` regions
    (``GVCDataset(one_per_question=True)``): its metainfo holds
    ``question``, the reference ``gt_answer`` and, for messages,
    ``ann_file`` / ``record_id`` / ``answer_field``. The question type is
    the first of ``question_patterns`` whose regular expression matches the
    lower-cased question (default: colour, shape, size); other questions
    (descriptions, relations) are counted as ``unscored`` only.

    Normalisation (:func:`normalise_answer`): grounding markup removed,
    lower case, non-letters to spaces, split into words. The reference's
    attribute is the one word of the type's vocabulary it contains (none or
    several is bad ground truth: :class:`GroundingDataError`). A prediction
    is correct iff the vocabulary words it contains are exactly that word
    (naming a second colour, or none, is wrong).

    Reported (x ``scale``): ``{type}_acc`` per type, ``overall`` = correct
    over all scored questions (a question-weighted mean), ``num_{type}``
    and ``num_unscored``.

    Args:
        question_patterns: type -> regular expression on the question.
        vocabulary: type -> attribute words (one per answer).
        prediction_key: data-sample field with the generated answer.
        scale: factor applied to the accuracies.
    """
    default_prefix: Optional[str] = 'region_qa'

    def __init__(self,
                 question_patterns: Optional[Dict[str, str]] = None,
                 vocabulary: Optional[Dict[str, Sequence[str]]] = None,
                 prediction_key: str = 'pred_text',
                 scale: float = 100.0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        patterns = dict(question_patterns or DEFAULT_QUESTION_PATTERNS)
        vocab = {k: tuple(v) for k, v in
                 (vocabulary or DEFAULT_VOCABULARY).items()}
        if not patterns or set(patterns) != set(vocab):
            raise ValueError('RegionQAAccuracyMetric: question_patterns and '
                             'vocabulary must name the same non-empty set of '
                             f'types, got {sorted(patterns)} and '
                             f'{sorted(vocab)}')
        empty = [k for k, v in vocab.items() if not v]
        if empty:
            raise ValueError('RegionQAAccuracyMetric: empty vocabulary for '
                             f'{empty}')
        self.patterns = {k: re.compile(p) for k, p in patterns.items()}
        self.vocabulary = vocab
        self.prediction_key = prediction_key
        self.scale = scale

    def question_type(self, question: str) -> Optional[str]:
        """The first type whose pattern matches ``question``, else None."""
        lowered = question.lower()
        for name, pattern in self.patterns.items():
            if pattern.search(lowered):
                return name
        return None

    @staticmethod
    def _error(sample: Any, field: str, message: str,
               value: Any = GroundingDataError._NOT_GIVEN
               ) -> GroundingDataError:
        return GroundingDataError(
            message, source=get_field(sample, 'source'),
            file=get_field(sample, 'ann_file'),
            record=get_field(sample, 'record_id'),
            img_id=get_field(sample, 'img_id'), field=field, value=value)

    def score_sample(self, sample: Any) -> Dict[str, Any]:
        """``dict(type=..., correct=bool)`` of one sample (``type`` None
        for an unscored question)."""
        question = get_field(sample, 'question')
        if not isinstance(question, str):
            raise self._error(sample, 'question', 'region-question sample '
                              'without its question text (use '
                              'GVCDataset(one_per_question=True))',
                              value=question)
        kind = self.question_type(question)
        if kind is None:
            return dict(type=None, correct=False)
        answer = get_field(sample, 'gt_answer')
        field = get_field(sample, 'answer_field') or 'gt_answer'
        if not isinstance(answer, str):
            raise self._error(sample, field, 'no reference answer',
                              value=answer)
        truth = attribute_words(answer, self.vocabulary[kind])
        if len(truth) != 1:
            raise self._error(
                sample, field, f'a {kind} answer must name exactly one of '
                f'{list(self.vocabulary[kind])}; it names {truth}',
                value=answer)
        pred = get_field(sample, self.prediction_key)
        words = attribute_words(pred or '', self.vocabulary[kind])
        return dict(type=kind, correct=words == truth)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep (type, correct) per sample."""
        for sample in data_samples:
            self.results.append(self.score_sample(sample))

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        """Accuracy per type and over every scored question."""
        scored = [r for r in results if r['type'] is not None]
        if not scored:
            raise ValueError('RegionQAAccuracyMetric: no question of the '
                             f'types {list(self.patterns)} among '
                             f'{len(results)} samples')
        metrics: Dict[str, float] = {}
        for kind in self.patterns:
            hits = [r['correct'] for r in scored if r['type'] == kind]
            if hits:
                metrics[f'{kind}_acc'] = self.scale * sum(hits) / len(hits)
            metrics[f'num_{kind}'] = float(len(hits))
        metrics['overall'] = self.scale * sum(
            r['correct'] for r in scored) / len(scored)
        metrics['num_unscored'] = float(len(results) - len(scored))
        log_metric_table(f'Region questions ({len(scored)} scored)', metrics)
        return metrics
