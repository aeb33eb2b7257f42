"""Referring-expression segmentation scores with GLaMM/LISA conventions.

Per expression k (binary masks at the original size):

* ``I_k = |pred & gt|``, ``U_k = |pred | gt|``;
* ``IoU_k = I_k / (U_k + 1e-5)``, **plus 1.0 when U_k == 0** (empty GT and
  empty prediction: a correct "no object" answer).

Over a split of N expressions:

* **gIoU** = ``sum_k IoU_k / (N + 1e-5)`` (mean per-expression IoU; mmdet's
  ``RefSegMetric`` calls this "mIoU" and gives 0 where U == 0);
* **cIoU** = ``sum_k I_k / (sum_k U_k + 1e-10)`` (cumulative IoU).

The official script accumulates in float32 (its sums pass through a float32
``all_reduce``), so its values are float32-rounded (differences ~1e-7). The
default here is float64; ``float32=True`` reproduces the float32 arithmetic
(per-expression IoU in float32, sequential float32 sums).
"""
from typing import Dict, Sequence, Tuple

import numpy as np


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> Tuple[int, int]:
    """Pixel counts (I, U) of two bool masks of the same shape [H, W]."""
    if pred.shape != gt.shape:
        raise ValueError(f'mask shapes differ: pred {pred.shape} vs gt '
                         f'{gt.shape}')
    pred = pred.astype(bool, copy=False)
    gt = gt.astype(bool, copy=False)
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


def refseg_scores(intersections: Sequence[int],
                  unions: Sequence[int],
                  float32: bool = False) -> Dict[str, float]:
    """cIoU and gIoU (fractions in [0, 1]) from per-expression counts.

    Args:
        intersections: I_k per expression.
        unions: U_k per expression.
        float32: reproduce the official float32 arithmetic.

    Returns:
        dict: ``cIoU``, ``gIoU`` and ``num_expressions``.
    """
    dtype = np.float32 if float32 else np.float64
    inter = np.asarray(intersections, dtype=dtype)
    union = np.asarray(unions, dtype=dtype)
    if inter.shape != union.shape:
        raise ValueError('intersections and unions differ in length: '
                         f'{inter.shape} vs {union.shape}')
    n = len(inter)
    if n == 0:
        return dict(cIoU=0.0, gIoU=0.0, num_expressions=0)
    iou = inter / (union + dtype(1e-5))
    iou[union == 0] += dtype(1.0)
    if float32:
        sum_iou = np.cumsum(iou, dtype=np.float32)[-1]
        sum_i = np.cumsum(inter, dtype=np.float32)[-1]
        sum_u = np.cumsum(union, dtype=np.float32)[-1]
        giou = np.float32(sum_iou) / (np.float32(n) + np.float32(1e-5))
        ciou = np.float32(sum_i) / (np.float32(sum_u) + np.float32(1e-10))
    else:
        giou = iou.sum() / (n + 1e-5)
        ciou = inter.sum() / (union.sum() + 1e-10)
    return dict(cIoU=float(ciou), gIoU=float(giou), num_expressions=n)
