"""cIoU / gIoU for referring-expression segmentation (GLaMM, LLaVA-G)."""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmdet.evaluation.metrics import RefSegMetric

from mmgrounding.registry import METRICS
from ..functional.mask_ops import to_bool_masks
from ..functional.refseg import intersection_union, refseg_scores
from ..functional.sample_utils import get_field, instance_field, sample_id
from ..functional.table import log_metric_table


@METRICS.register_module()
class RefSegGIoUMetric(RefSegMetric):
    """Referring segmentation cIoU and gIoU with the official conventions.

    Extends mmdet's ``RefSegMetric`` (same per-sample sums, cheap to gather)
    with GLaMM/LISA's definitions (see :mod:`..functional.refseg`):
    per-expression ``IoU = I / (U + 1e-5)``, +1.0 when ``U == 0``;
    ``gIoU = sum IoU / (N + 1e-5)``; ``cIoU = sum I / (sum U + 1e-10)``.
    mmdet's own ``mIoU`` differs: it scores an empty-vs-empty expression 0.

    A sample may hold several expressions: the i-th predicted mask answers
    the i-th GT mask (``gt_instances.masks``, one per grounding token). A
    missing prediction counts as an empty mask; extra predictions are
    ignored. GT masks are binary (the official summed-polygon value 2 and
    the 255 ignore label do not arise from ``BitmapMasks``). Every sample
    counts, even one whose image and expression text repeat another's (the
    official evaluation counts repeated RefCOCO sentences each time);
    mmengine's ``collect_results`` already drops distributed padding.

    Args:
        iou_metrics: subset of ``('cIoU', 'gIoU')``.
        float32: reproduce the official float32 accumulation (~1e-7).
        scale: factor applied to the reported numbers (100: paper tables).
    """
    default_prefix: Optional[str] = 'refseg'

    def __init__(self,
                 iou_metrics: Sequence[str] = ('cIoU', 'gIoU'),
                 float32: bool = False,
                 scale: float = 100.0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        # the parent validates against its own names; ours are checked here
        super().__init__(
            metric=('cIoU', ), collect_device=collect_device, prefix=prefix)
        unknown = set(iou_metrics) - {'cIoU', 'gIoU'}
        if unknown or not iou_metrics:
            raise ValueError('RefSegGIoUMetric: iou_metrics must be a '
                             f'non-empty subset of (cIoU, gIoU), got '
                             f'{list(iou_metrics)}')
        self.metrics = list(iou_metrics)
        self.float32 = float32
        self.scale = scale

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store per-expression intersection and union pixel counts."""
        for sample in data_samples:
            img_id = sample_id(sample)
            where = f'RefSeg sample img_id={img_id!r}'
            gt_masks = to_bool_masks(
                instance_field(get_field(sample, 'gt_instances'), 'masks'),
                'gt_instances.masks')
            pred_masks = to_bool_masks(
                instance_field(get_field(sample, 'pred_instances'), 'masks'),
                'pred_instances.masks')
            if len(pred_masks) and len(gt_masks) and \
                    pred_masks.shape[1:] != gt_masks.shape[1:]:
                raise ValueError(
                    f'{where}: pred_instances.masks has size '
                    f'{pred_masks.shape[1:]} but gt_instances.masks '
                    f'{gt_masks.shape[1:]}; predictions must be at the '
                    'original image size')
            inters, unions = [], []
            for k, gt_mask in enumerate(gt_masks):
                pred_mask = pred_masks[k] if k < len(pred_masks) else \
                    np.zeros_like(gt_mask)
                i, u = intersection_union(pred_mask, gt_mask)
                inters.append(i)
                unions.append(u)
            self.results.append(
                dict(intersections=inters, unions=unions))

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        """cIoU and gIoU over all expressions."""
        inters = [i for r in results for i in r['intersections']]
        unions = [u for r in results for u in r['unions']]
        scores = refseg_scores(inters, unions, float32=self.float32)
        metrics = {m: scores[m] * self.scale for m in self.metrics}
        log_metric_table(
            f'RefSeg ({scores["num_expressions"]} expressions, '
            f'{len(results)} samples)', metrics)
        return metrics
