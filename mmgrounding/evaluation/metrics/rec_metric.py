"""Referring expression comprehension accuracy (Acc@0.5)."""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmdet.evaluation.functional import bbox_overlaps
from mmengine.evaluator import BaseMetric

from mmgrounding.registry import METRICS
from ..functional.sample_utils import (as_numpy, boxes_array, get_field,
                                       instance_field)
from ..functional.table import log_metric_table


@METRICS.register_module()
class RECAccMetric(BaseMetric):
    """Acc@IoU for referring expression comprehension (RefCOCO/+/g).

    An expression is correct when its predicted box has IoU >= ``iou_thr``
    (0.5) with the GT box (xyxy, original pixels; mmdet ``bbox_overlaps``,
    no +1). Pairing inside a sample:

    * one GT box and several predictions (a detector-style ranked list):
      predictions are ranked by ``scores`` and ``Acc@k`` asks for a hit in
      the top k (mmdet ``RefExpMetric``'s precision@k);
    * otherwise the i-th prediction answers the i-th GT (one grounding
      token per expression); a missing prediction is a miss, so top-k
      equals top-1.

    mmdet's ``RefExpMetric`` is not reused because it reads GT from an MDETR
    annotation file; here GT comes from ``gt_instances.bboxes``.

    Args:
        iou_thr: IoU threshold (inclusive).
        topk: k values reported as ``Acc@k`` (1 is the REC number).
        scale: factor applied to reported numbers.
    """
    default_prefix: Optional[str] = 'rec'

    def __init__(self,
                 iou_thr: float = 0.5,
                 topk: Sequence[int] = (1, ),
                 scale: float = 100.0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not topk or any(k < 1 for k in topk):
            raise ValueError(f'RECAccMetric: topk must be >= 1, got {topk}')
        self.iou_thr = iou_thr
        self.topk = tuple(topk)
        self.scale = scale

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store, per expression, the rank of the first hit (or -1)."""
        for sample in data_samples:
            gt = boxes_array(
                instance_field(get_field(sample, 'gt_instances'), 'bboxes'))
            pred_inst = get_field(sample, 'pred_instances')
            pred = boxes_array(instance_field(pred_inst, 'bboxes'))
            scores = as_numpy(instance_field(pred_inst, 'scores'))
            ranks = []
            if len(gt) == 1 and len(pred) > 1:
                order = np.argsort(-scores, kind='stable') if len(
                    scores) == len(pred) else np.arange(len(pred))
                ious = bbox_overlaps(pred[order], gt)[:, 0]
                hits = np.nonzero(ious >= self.iou_thr)[0]
                ranks.append(int(hits[0]) if len(hits) else -1)
            else:
                for k in range(len(gt)):
                    if k >= len(pred):
                        ranks.append(-1)
                        continue
                    iou = bbox_overlaps(pred[k:k + 1], gt[k:k + 1])[0, 0]
                    ranks.append(0 if iou >= self.iou_thr else -1)
            self.results.append(dict(ranks=ranks))

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        """Fraction of expressions with a hit in the top k."""
        ranks = np.asarray([k for r in results for k in r['ranks']])
        metrics = {}
        for k in self.topk:
            acc = float(np.mean((ranks >= 0) & (ranks < k))) if len(
                ranks) else 0.0
            metrics[f'Acc@{k}'] = acc * self.scale
        log_metric_table(
            f'REC Acc@IoU>={self.iou_thr} ({len(ranks)} expressions)',
            metrics)
        return metrics
