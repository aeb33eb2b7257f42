"""Mask helpers shared by the mask metrics: RLE encoding and RLE IoU.

Predicted and ground-truth masks are reduced to compressed COCO RLE in
``process`` (a few hundred bytes per mask instead of ``H*W`` booleans) so that
mmengine's cross-rank gathering stays cheap; IoUs are then computed on RLE with
pycocotools' C implementation, one call per image.
"""
from typing import Any, Dict, List, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils

RLE = Dict[str, Any]


def to_bool_masks(masks: Any, name: str = 'masks') -> np.ndarray:
    """Convert masks of any supported container to a bool array [N, H, W].

    Args:
        masks: ``BoolTensor``/array [N, H, W], mmdet ``BitmapMasks`` or
            ``PolygonMasks`` (anything with ``to_ndarray``), a list of
            compressed COCO RLE dicts, or ``None``.
        name: field name used in error messages.

    Returns:
        np.ndarray: bool [N, H, W] (N may be 0; ``None`` gives [0, 0, 0]).
    """
    if masks is None:
        return np.zeros((0, 0, 0), dtype=bool)
    if isinstance(masks, (list, tuple)) and len(masks) and isinstance(
            masks[0], dict):
        arr = mask_utils.decode(list(masks)).transpose(2, 0, 1)
    elif hasattr(masks, 'to_ndarray'):
        arr = masks.to_ndarray()
    elif isinstance(masks, torch.Tensor):
        arr = masks.detach().cpu().numpy()
    else:
        arr = np.asarray(masks)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f'`{name}` must have shape [N, H, W], got '
                         f'{tuple(arr.shape)}')
    return arr.astype(bool, copy=False)


def encode_rle(masks: np.ndarray) -> List[RLE]:
    """Encode bool masks [N, H, W] to compressed COCO RLE dicts.

    ``counts`` is decoded to ``str`` (JSON-friendly, like the official GCG
    prediction files); pycocotools accepts both ``str`` and ``bytes``.
    """
    if masks.shape[0] == 0:
        return []
    rles = mask_utils.encode(
        np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        if isinstance(rle['counts'], bytes):
            rle['counts'] = rle['counts'].decode('utf-8')
    return rles


def rle_area(rles: Sequence[RLE]) -> np.ndarray:
    """Pixel areas of RLE masks as an int64 array [N]."""
    if len(rles) == 0:
        return np.zeros((0, ), dtype=np.int64)
    return np.asarray(mask_utils.area(list(rles)), dtype=np.int64)


def rle_iou_matrix(dt: Sequence[RLE],
                   gt: Sequence[RLE],
                   empty_union: float = float('nan')) -> np.ndarray:
    """Pairwise mask IoU [len(dt), len(gt)] from RLE.

    Equals ``sum(a & b) / sum(a | b)`` on decoded masks (both are IEEE
    divisions of the same integer counts). pycocotools returns 0 when both
    masks are empty; the official GCG numpy code returns ``0/0 = NaN`` there,
    which ``empty_union`` restores (pass ``0.0`` to keep COCO's value).
    """
    dt, gt = list(dt), list(gt)
    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)), dtype=np.float64)
    for rle in dt + gt:
        if tuple(rle['size']) != tuple(gt[0]['size']):
            raise ValueError('Mask sizes differ: prediction/GT masks must '
                             f'share one size, got {rle["size"]} and '
                             f'{gt[0]["size"]}')
    ious = np.asarray(
        mask_utils.iou(dt, gt, [0] * len(gt)), dtype=np.float64).reshape(
            len(dt), len(gt))
    both_empty = (rle_area(dt)[:, None] == 0) & (rle_area(gt)[None, :] == 0)
    ious[both_empty] = empty_union
    return ious
