"""Export GLaMM GCG predictions as detector / grounding pseudo-labels.

Both classes are mmdet metrics run by ``tools/test.py`` over a GLaMM GCG
config: they read the samples ``BaseGroundedLMM.predict`` fills
(``pred_text`` with GLaMM markup, ``pred_instances`` with one mask / box /
score per ``[SEG]`` token, ``labels`` = token index) and hand mmdet's own
metrics what those expect.

* :class:`PseudoLabelCocoMetric` (mmdet ``CocoMetric``): labels become
  detector categories through the phrase each ``[SEG]`` grounds
  (:func:`..phrases.phrase_category`); writes ``<prefix>.bbox.json`` /
  ``<prefix>.segm.json`` (COCO results) and, unless ``format_only``, scores
  the pseudo-labels against the GT of ``ann_file``.
* :class:`GCGDumpODVGResults` (mmdet ``DumpODVGResults``, VG mode): the
  caption becomes ``text``, each ``[SEG]``'s phrase span a
  ``tokens_positive`` entry; one ODVG grounding record per image.
"""
import json
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.evaluation import CocoMetric, DumpODVGResults
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.utils import mkdir_or_exist

from mmgrounding.registry import METRICS
from mmgrounding.structures import GroundingDataError
from mmgrounding.structures.markup import MarkupError, parse_markup
from .phrases import phrase_category

Span = Tuple[int, int]


def grounded_spans(sample: dict, style: str = 'glamm'
                   ) -> Optional[Tuple[str, List[Span]]]:
    """Plain caption and one char span per grounding token of an answer.

    Returns None when ``pred_text`` is not well-formed markup (the answer
    grounds nothing usable). The k-th span belongs to the k-th predicted
    instance (``labels == k``).

    Raises:
        ValueError: the answer's grounding tokens and the predicted
            instances disagree in number (a broken model contract).
    """
    try:
        caption, spans = parse_markup(sample['pred_text'], style)
    except MarkupError:
        return None
    num = len(sample['pred_instances']['labels'])
    if len(spans) != num:
        raise ValueError(
            f'img_id={sample.get("img_id")!r}: {len(spans)} grounding '
            f'tokens in pred_text but {num} predicted instances')
    return caption, list(spans)


@METRICS.register_module()
class PseudoLabelCocoMetric(CocoMetric):
    """mmdet ``CocoMetric`` over GCG predictions mapped to categories.

    Each predicted instance takes the category its phrase names (first class
    word, see :func:`..phrases.phrase_category`); instances whose phrase
    names no class, with ``score < min_score``, or of answers that do not
    parse are dropped (counted in the results). Images are matched to
    ``ann_file`` by file name (GCG datasets keep the file stem as ``img_id``).

    Args:
        classes: detector class names, in label order; each must be a
            category name of ``ann_file``.
        ann_file: COCO instances file of the images (categories, image ids;
            its annotations are the GT when ``format_only=False``).
        min_score: keep instances scoring at least this (mask confidence).
        style: the answer's markup style.
        **kwargs: ``CocoMetric`` arguments (``metric``, ``format_only``,
            ``outfile_prefix``...).
    """
    default_prefix: Optional[str] = 'pseudo'

    def __init__(self,
                 classes: Sequence[str],
                 ann_file: str,
                 min_score: float = 0.0,
                 style: str = 'glamm',
                 **kwargs) -> None:
        super().__init__(ann_file=ann_file, **kwargs)
        self.classes = tuple(classes)
        names = {c['name'] for c in self._coco_api.dataset['categories']}
        missing = [c for c in self.classes if c not in names]
        if missing:
            raise GroundingDataError(
                f'classes {missing} are not categories of the file',
                file=ann_file, field='categories', value=sorted(names))
        self.ann_file = ann_file
        self.min_score = min_score
        self.style = style
        self._by_name = {
            img['file_name']: img['id']
            for img in self._coco_api.dataset['images']
        }
        self.counts = dict(phrases=0, kept=0, unmapped=0, low_score=0,
                           unparsed_answers=0)

    def _image_id(self, sample: dict) -> int:
        name = osp.basename(sample['img_path'])
        if name not in self._by_name:
            raise GroundingDataError(
                f'image {name!r} is not in the file',
                file=self.ann_file, record=sample.get('img_id'),
                field='file_name', value=name)
        return self._by_name[name]

    def to_category_sample(self, sample: dict) -> dict:
        """The sample as ``CocoMetric`` reads it: category labels, COCO id."""
        pred = sample['pred_instances']
        parsed = grounded_spans(sample, self.style)
        keep: List[int] = []
        labels: List[int] = []
        if parsed is None:
            self.counts['unparsed_answers'] += 1
        else:
            caption, spans = parsed
            for k, (start, end) in enumerate(spans):
                self.counts['phrases'] += 1
                category = phrase_category(caption[start:end], self.classes)
                if category is None:
                    self.counts['unmapped'] += 1
                elif float(pred['scores'][k]) < self.min_score:
                    self.counts['low_score'] += 1
                else:
                    keep.append(k)
                    labels.append(category)
        self.counts['kept'] += len(keep)
        idx = torch.tensor(keep, dtype=torch.long)
        out = dict(
            bboxes=pred['bboxes'][idx].reshape(-1, 4),
            scores=pred['scores'][idx],
            labels=torch.tensor(labels, dtype=torch.long))
        if 'masks' in pred:
            out['masks'] = pred['masks'][idx]
        return dict(img_id=self._image_id(sample),
                    ori_shape=sample['ori_shape'], pred_instances=out)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        super().process(data_batch,
                        [self.to_category_sample(s) for s in data_samples])

    def compute_metrics(self, results: list) -> Dict[str, float]:
        # categories by our class list, images: the ones predicted
        self.dataset_meta = dict(self.dataset_meta or {},
                                 classes=self.classes)
        self.cat_ids = [
            self._coco_api.get_cat_ids(cat_names=[c])[0]
            for c in self.classes
        ]
        self.img_ids = sorted({gt['img_id'] for gt, _ in results})
        if self.outfile_prefix is not None:
            mkdir_or_exist(osp.dirname(osp.abspath(self.outfile_prefix)))
        out = super().compute_metrics(results)
        print_log(f'{type(self).__name__}: {self.counts}', logger='current')
        # floats: mmengine's test json writes ints as null
        out.update({f'num_{k}': float(v) for k, v in self.counts.items()})
        return out


@METRICS.register_module()
class GCGDumpODVGResults(DumpODVGResults):
    """mmdet ``DumpODVGResults`` (VG mode) over GCG predictions.

    Per image: ``caption`` = the answer without markup, one region per
    ``[SEG]`` (its phrase, ``tokens_positive`` = ``[[start, end]]`` in that
    caption, the boxes that survive mmdet's score threshold and NMS).
    Answers that do not parse keep their caption and no regions. Regions
    left without a box are dropped on writing: mmdet's ``ODVGDataset``
    indexes ``bbox[0]`` of every region. Written with the stdlib ``json``
    (one object per line), so ``jsonlines`` is not needed.

    Args:
        outfile_path: the ``.jsonl`` (ODVG) file to write.
        img_prefix: stripped from ``img_path`` to give ``filename``.
        score_thr, nms_thr: as mmdet's ``DumpODVGResults``.
        style: the answer's markup style.
    """
    default_prefix: Optional[str] = 'pl_odvg'

    def __init__(self,
                 outfile_path: str,
                 img_prefix: str,
                 score_thr: float = 0.1,
                 nms_thr: float = 0.5,
                 style: str = 'glamm',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        # mmdet's __init__ only adds a jsonlines import check
        BaseMetric.__init__(self, collect_device=collect_device,
                            prefix=prefix)
        self.outfile_path = outfile_path
        self.img_prefix = img_prefix
        self.score_thr = score_thr
        self.nms_thr = nms_thr
        self.style = style

    def to_grounding_sample(self, sample: dict) -> dict:
        """The sample with ``text`` and ``tokens_positive`` set."""
        parsed = grounded_spans(sample, self.style)
        pred = dict(sample['pred_instances'])
        if parsed is None:
            caption, spans = sample.get('pred_caption', ''), []
            for key in ('bboxes', 'scores', 'labels'):
                pred[key] = pred[key][:0]
        else:
            caption, spans = parsed
        return dict(sample, text=caption, pred_instances=pred,
                    tokens_positive=[[[s, e]] for s, e in spans])

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        super().process(data_batch,
                        [self.to_grounding_sample(s) for s in data_samples])

    def compute_metrics(self, results: list) -> dict:
        regions = 0
        mkdir_or_exist(osp.dirname(osp.abspath(self.outfile_path)))
        with open(self.outfile_path, 'w') as f:
            for record in results:
                grounding = record['grounding']
                grounding['regions'] = [
                    r for r in grounding['regions'] if r['bbox']
                ]
                regions += len(grounding['regions'])
                f.write(json.dumps(record) + '\n')
        print_log(f'{len(results)} ODVG records ({regions} regions) saved '
                  f'to {self.outfile_path}', logger='current')
        return dict(num_records=float(len(results)),
                    num_regions=float(regions))
