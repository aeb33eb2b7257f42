"""mmseg ``IoUMetric`` over GLaMM's open-vocabulary segmentation answers.

Protocol (``SemanticSegGroundingDataset`` in ``test_mode``): each sample is
one (image, class) query, "segment the <class>", asked for every class
present in the GT label map (the class list is an oracle: absent classes
are never asked, so they cannot be false positives). The answer's masks
(any number, one per ``[SEG]``) are merged into one mask for that class;
per image, a pixel takes the class of the highest-scoring query whose mask
covers it, else the background label. The label map then goes through
mmseg's ``IoUMetric.intersect_and_union`` against the GT label map, and
``compute_metrics`` is mmseg's (aAcc, mIoU, mAcc over all classes of the
dataset, including background; classes never in the GT are NaN and left
out of the means), plus ``IoU.<class>``.
"""
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmseg.evaluation import IoUMetric

from mmgrounding.datasets.semantic_seg import load_label_map
from mmgrounding.registry import METRICS


@METRICS.register_module()
class OpenVocabSemSegMetric(IoUMetric):
    """Per-class GLaMM masks -> label maps -> mmseg mIoU.

    Args:
        background (str, optional): class name given to pixels no query
            claims (``None``: ``ignore_index``, i.e. no class at all: mmseg
            counts them as misses of their GT class).
        score_thr (float): masks of answers scoring below this are
            dropped (the query predicts nothing).
        **kwargs: ``IoUMetric`` arguments (``iou_metrics``,
            ``ignore_index``, ``nan_to_num``...).

    Each sample needs ``semseg_label`` (the class asked), ``img_path``,
    ``gt_seg_map_path`` (+ ``label_map`` / ``reduce_zero_label``) and
    ``pred_instances.masks`` / ``.scores``.
    """
    default_prefix: Optional[str] = 'semseg'

    def __init__(self,
                 background: Optional[str] = 'background',
                 score_thr: float = 0.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.background = background
        self.score_thr = score_thr

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            pred = s['pred_instances']
            masks = pred['masks']
            if isinstance(masks, torch.Tensor):
                masks = masks.cpu().numpy()
            masks = np.asarray(masks, dtype=bool)
            h, w = s['ori_shape'][:2]
            scores = pred['scores'].cpu().numpy() if len(masks) else []
            keep = [k for k in range(len(masks))
                    if scores[k] >= self.score_thr]
            union = masks[keep].any(0) if keep else np.zeros((h, w), bool)
            if union.shape != (h, w):
                raise ValueError(
                    f'img_path={s["img_path"]!r}: mask {union.shape} != '
                    f'ori_shape {(h, w)}')
            self.results.append(dict(
                img_path=s['img_path'], label=int(s['semseg_label']),
                score=float(max(scores[k] for k in keep)) if keep else 0.,
                mask=np.packbits(union), shape=(h, w),
                gt=(s['gt_seg_map_path'], s.get('label_map'),
                    bool(s.get('reduce_zero_label', False)))))

    def label_maps(self, results: List[dict]) -> List[tuple]:
        """Per image: (pred label map, GT label map), both int64 [H, W]."""
        classes = self.dataset_meta['classes']
        fill = self.ignore_index if self.background is None else \
            classes.index(self.background)
        by_image: Dict[str, List[dict]] = OrderedDict()
        for r in results:
            by_image.setdefault(r['img_path'], []).append(r)
        out = []
        for queries in by_image.values():
            h, w = queries[0]['shape']
            pred = np.full((h, w), fill, dtype=np.int64)
            # ascending score: the best-scoring query is painted last
            for q in sorted(queries, key=lambda q: q['score']):
                mask = np.unpackbits(q['mask'])[:h * w].reshape(h, w)
                pred[mask.astype(bool)] = q['label']
            path, label_map, reduce_zero = queries[0]['gt']
            gt = load_label_map(path, label_map, reduce_zero,
                                self.ignore_index).astype(np.int64)
            out.append((pred, gt))
        return out

    def compute_metrics(self, results: list) -> Dict[str, float]:
        num_classes = len(self.dataset_meta['classes'])
        areas = [
            self.intersect_and_union(torch.from_numpy(p), torch.from_numpy(g),
                                     num_classes, self.ignore_index)
            for p, g in self.label_maps(results)
        ]
        metrics = super().compute_metrics(areas)
        inter = sum(a[0] for a in areas)
        union = sum(a[1] for a in areas)
        for name, i, u in zip(self.dataset_meta['classes'], inter.tolist(),
                              union.tolist()):
            metrics[f'IoU.{name}'] = round(100.0 * i / u, 2) if u else \
                float('nan')
        return metrics
