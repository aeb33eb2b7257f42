"""Dense region captioning scores: box recall + captions of matched boxes."""
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from mmengine.evaluator import BaseMetric

from mmgrounding.evaluation.functional.caption import CAPTION_METRICS
from mmgrounding.evaluation.functional.table import log_metric_table
from mmgrounding.evaluation.metrics import RegionCaptionMetric
from mmgrounding.registry import METRICS


def match_boxes(pred: torch.Tensor, gt: torch.Tensor,
                iou_thr: float = 0.5) -> torch.Tensor:
    """For each predicted box, the index of the GT box with the highest IoU
    if that IoU is ``>= iou_thr``, else -1.

    Args:
        pred: [N, 4] xyxy boxes. gt: [M, 4] xyxy boxes.

    Returns:
        LongTensor [N]; ties go to the lowest GT index.
    """
    pred = torch.as_tensor(pred, dtype=torch.float32).reshape(-1, 4)
    gt = torch.as_tensor(gt, dtype=torch.float32).reshape(-1, 4)
    match = torch.full((len(pred), ), -1, dtype=torch.long)
    if len(pred) == 0 or len(gt) == 0:
        return match
    iou = bbox_overlaps(pred, gt)  # [N, M]
    best, idx = iou.max(dim=1)
    hit = best >= iou_thr
    match[hit] = idx[hit]
    return match


def recalled(pred: torch.Tensor, gt: torch.Tensor,
             iou_thr: float = 0.5) -> torch.Tensor:
    """BoolTensor [M]: GT box overlapped by some prediction with IoU >=
    ``iou_thr``."""
    pred = torch.as_tensor(pred, dtype=torch.float32).reshape(-1, 4)
    gt = torch.as_tensor(gt, dtype=torch.float32).reshape(-1, 4)
    if len(pred) == 0 or len(gt) == 0:
        return torch.zeros(len(gt), dtype=torch.bool)
    return bbox_overlaps(pred, gt).max(dim=0).values >= iou_thr


@METRICS.register_module()
class DenseRegionCaptionMetric(BaseMetric):
    """Score detect-then-describe predictions against GT region captions.

    Each predicted box is matched to the GT box with the highest IoU (if
    ``>= iou_thr``); the caption of every matched box is scored against
    that GT region's references with :class:`RegionCaptionMetric` (METEOR,
    CIDEr-D, one item per matched box). Box quality is reported as

    * ``box_recall``: GT regions hit by at least one kept box (IoU >=
      ``iou_thr``) / all GT regions;
    * ``box_precision``: kept boxes matched to a GT region / kept boxes;
    * ``num_matched`` / ``num_pred`` / ``num_gt``: the counts behind them.

    Reads ``pred_instances.bboxes``, ``pred_region_captions``,
    ``gt_instances.bboxes`` and the ``gt_region_captions`` metainfo (one
    reference list per GT box).
    """
    default_prefix: Optional[str] = 'dense_caption'

    def __init__(self,
                 iou_thr: float = 0.5,
                 caption_metrics: Sequence[str] = CAPTION_METRICS,
                 scale: float = 100.0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0.0 < iou_thr <= 1.0:
            raise ValueError('DenseRegionCaptionMetric: iou_thr must be in '
                             f'(0, 1], got {iou_thr}')
        self.iou_thr = float(iou_thr)
        self.scale = scale
        self.caption_metric = RegionCaptionMetric(
            caption_metrics=caption_metrics, scale=scale)

    @staticmethod
    def _get(sample: Any, key: str) -> Any:
        if isinstance(sample, dict):
            if key in sample:
                return sample[key]
            return sample.get('metainfo', {}).get(key)
        return sample.get(key)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Match boxes of each image; keep counts and matched captions."""
        for sample in data_samples:
            img_id = self._get(sample, 'img_id')
            pred = self._get(sample, 'pred_instances')
            gt = self._get(sample, 'gt_instances')
            refs = self._get(sample, 'gt_region_captions')
            captions = self._get(sample, 'pred_region_captions')
            if pred is None or gt is None or refs is None or captions is None:
                raise ValueError(
                    f'DenseRegionCaptionMetric: sample img_id={img_id!r} '
                    'needs pred_instances, pred_region_captions, '
                    'gt_instances and gt_region_captions')
            # mmdet's PackDetInputs gives HorizontalBoxes, models tensors
            pred_boxes = get_box_tensor(pred['bboxes']).cpu()
            gt_boxes = get_box_tensor(gt['bboxes']).cpu()
            if len(captions) != len(pred_boxes):
                raise ValueError(
                    f'DenseRegionCaptionMetric: img_id={img_id!r}: '
                    f'{len(captions)} captions for {len(pred_boxes)} boxes')
            if len(refs) != len(gt_boxes):
                raise ValueError(
                    f'DenseRegionCaptionMetric: img_id={img_id!r}: '
                    f'{len(refs)} gt_region_captions for {len(gt_boxes)} GT '
                    'boxes')
            match = match_boxes(pred_boxes, gt_boxes, self.iou_thr)
            matched = [
                dict(id=(img_id, k), caption=captions[k],
                     references=list(refs[int(g)]))
                for k, g in enumerate(match.tolist()) if g >= 0
            ]
            self.results.append(
                dict(
                    num_gt=len(gt_boxes),
                    num_pred=len(pred_boxes),
                    num_recalled=int(
                        recalled(pred_boxes, gt_boxes, self.iou_thr).sum()),
                    matched=matched))

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        num_gt = sum(r['num_gt'] for r in results)
        num_pred = sum(r['num_pred'] for r in results)
        items = [m for r in results for m in r['matched']]
        metrics: Dict[str, float] = dict(
            box_recall=self.scale * sum(r['num_recalled']
                                        for r in results) / max(num_gt, 1),
            box_precision=self.scale * len(items) / max(num_pred, 1),
            num_gt=float(num_gt),
            num_pred=float(num_pred),
            num_matched=float(len(items)))
        if items:
            metrics.update(self.caption_metric.compute_metrics(items))
        else:
            metrics.update({k: 0.0 for k in self.caption_metric.
                            caption_metrics})
        log_metric_table(
            f'Dense region captioning ({len(results)} images, IoU >= '
            f'{self.iou_thr})', metrics)
        return metrics
