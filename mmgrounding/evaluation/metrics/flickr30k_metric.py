"""Flickr30K Entities phrase grounding Recall@k (wraps mmdet's metric)."""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmdet.evaluation.functional import bbox_overlaps
from mmdet.evaluation.metrics import Flickr30kMetric
from mmdet.evaluation.metrics.flickr30k_metric import RecallTracker

from mmgrounding.registry import METRICS
from ..functional.sample_utils import (as_numpy, boxes_array, get_field,
                                       instance_field, sample_id)
from ..functional.table import log_metric_table


@METRICS.register_module()
class GroundingFlickr30kMetric(Flickr30kMetric):
    """Recall@1/5/10 of Flickr30K Entities with mmdet's definition.

    For each GT phrase, the predicted boxes of that phrase are ranked by
    score; Recall@k counts the phrase when one of its top-k boxes has IoU
    >= ``iou_thrs`` with one of the phrase's GT boxes (``k=-1``: any box).
    Counting is mmdet's ``RecallTracker``; this class only adapts the
    inputs and stores compact numpy data in ``process``:

    * GT: ``gt_instances.bboxes`` with their phrase index from
      ``phrase_ids`` (metainfo, mmdet's Flickr30k dataset) or
      ``gt_instances.phrase_ids``; default: box i belongs to phrase i.
      Phrases from ``phrases`` (mmdet) or ``gt_phrases``.
    * predictions: phrase index from ``pred_instances.phrase_ids``, or
      ``labels`` (mmdet GLIP/Grounding-DINO convention) when
      ``pred_phrase_source='labels'``; default ``'auto'`` uses
      ``phrase_ids`` if present, else the i-th prediction answers the i-th
      phrase (one grounding token per phrase).

    It also fixes ``merge_boxes`` of mmdet 3.3 (``np.boxes`` typo) and
    returns flat float metrics ``R@1``, ``R@5``, ``R@10``, ``R@any``.

    Args:
        topk: recall cut-offs (-1 = all predictions).
        iou_thrs: IoU threshold (inclusive).
        merge_boxes: merge a phrase's GT boxes into their enclosing box
            (MDETR "merged" protocol).
        pred_phrase_source: ``'auto'``, ``'phrase_ids'``, ``'labels'`` or
            ``'order'``.
        scale: factor applied to the reported numbers.
    """
    default_prefix: Optional[str] = 'flickr30k'

    def __init__(self,
                 topk: Sequence[int] = (1, 5, 10, -1),
                 iou_thrs: float = 0.5,
                 merge_boxes: bool = False,
                 pred_phrase_source: str = 'auto',
                 scale: float = 100.0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(
            topk=topk,
            iou_thrs=iou_thrs,
            merge_boxes=merge_boxes,
            collect_device=collect_device,
            prefix=prefix)
        if pred_phrase_source not in ('auto', 'phrase_ids', 'labels',
                                      'order'):
            raise ValueError('pred_phrase_source must be auto, phrase_ids, '
                             f'labels or order, got {pred_phrase_source!r}')
        self.pred_phrase_source = pred_phrase_source
        self.scale = scale

    def merge_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Smallest box enclosing all ``boxes`` (xyxy), as [1, 4]."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) <= 1:
            return boxes
        return np.array([[
            boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(),
            boxes[:, 3].max()
        ]])

    def _pred_phrase_ids(self, pred: Any, num: int, where: str) -> np.ndarray:
        source = self.pred_phrase_source
        ids = instance_field(pred, 'phrase_ids')
        if source == 'auto':
            source = 'phrase_ids' if ids is not None else 'order'
        if source == 'phrase_ids':
            if ids is None:
                raise KeyError(f'{where}: pred_instances has no phrase_ids')
            return as_numpy(ids, np.int64)
        if source == 'labels':
            return as_numpy(instance_field(pred, 'labels'), np.int64)
        return np.arange(num, dtype=np.int64)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store, per phrase, the ranked predicted boxes and its GT boxes."""
        for sample in data_samples:
            img_id = sample_id(sample)
            where = f'Flickr30k sample img_id={img_id!r}'
            gt_inst = get_field(sample, 'gt_instances')
            gt_boxes = boxes_array(instance_field(gt_inst, 'bboxes'))
            gt_ids = get_field(sample, 'phrase_ids')
            if gt_ids is None:
                gt_ids = instance_field(gt_inst, 'phrase_ids')
            gt_ids = np.arange(len(gt_boxes)) if gt_ids is None else \
                as_numpy(gt_ids, np.int64)
            if len(gt_ids) != len(gt_boxes):
                raise ValueError(f'{where}: {len(gt_boxes)} GT boxes but '
                                 f'{len(gt_ids)} phrase_ids')
            phrases = get_field(sample, 'phrases')
            if phrases is None:
                phrases = get_field(sample, 'gt_phrases')
            num_phrases = len(phrases) if phrases is not None else (
                int(gt_ids.max()) + 1 if len(gt_ids) else 0)
            pred = get_field(sample, 'pred_instances')
            boxes = boxes_array(instance_field(pred, 'bboxes'))
            scores = as_numpy(instance_field(pred, 'scores'))
            if len(scores) != len(boxes):
                scores = np.zeros(len(boxes))
            pred_ids = self._pred_phrase_ids(pred, len(boxes), where)
            per_phrase = []
            for p in range(num_phrases):
                tar = gt_boxes[gt_ids == p]
                if len(tar) == 0:
                    continue  # a phrase without a box is not evaluated
                sel = np.nonzero(pred_ids[:len(boxes)] == p)[0]
                sel = sel[np.argsort(-scores[sel], kind='stable')]
                per_phrase.append((boxes[sel], tar))
            self.results.append(dict(phrases=per_phrase))

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        """Recall@k over all phrases, via mmdet's ``RecallTracker``: every
        sample counts (Flickr30K has five sentences per image; mmengine's
        ``collect_results`` already drops distributed padding)."""
        tracker = RecallTracker(self.topk)
        for r in results:
            for cur, tar in r['phrases']:
                if self.merge:
                    tar = self.merge_boxes(tar)
                if len(cur) == 0:
                    cur = np.zeros((1, 4))
                ious = bbox_overlaps(np.asarray(cur), np.asarray(tar))
                for k in self.topk:
                    best = ious.max() if k == -1 else ious[:k].max()
                    if best >= self.iou_thrs:
                        tracker.add_positive(k, 'all')
                    else:
                        tracker.add_negative(k, 'all')
        report = tracker.report()
        metrics = {}
        for k in self.topk:
            name = 'R@any' if k == -1 else f'R@{k}'
            metrics[name] = report[str(k)].get('all', 0.0) * self.scale
        log_metric_table(f'Flickr30K Entities ({len(results)} images)',
                         metrics)
        return metrics
