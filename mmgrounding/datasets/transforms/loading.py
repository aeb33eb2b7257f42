"""Decode instance masks and boxes of a grounded record."""
from typing import Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_utils
from mmcv.transforms import BaseTransform
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from mmgrounding.registry import TRANSFORMS
from mmgrounding.structures import GroundingDataError
from ..utils import RecordError, check_rle


@TRANSFORMS.register_module()
class LoadGroundingAnnotations(BaseTransform):
    """Decode ``instances[*].mask`` and ``instances[*].bbox``.

    Masks may be COCO polygons (list of ``[x1, y1, x2, y2, ...]``), RLE dicts
    with compressed (``str``/``bytes``) or uncompressed (``list``) counts, or
    None. A None mask becomes the filled box when ``mask_from_box=True``;
    otherwise it stays an all-zero mask flagged invalid in ``gt_mask_valid``,
    and :class:`TokenizeConversation` raises if a phrase needs it (regions
    only need boxes).

    Added keys:

    - ``gt_masks`` (BitmapMasks [N, H, W], uint8, original image size).
    - ``gt_bboxes`` (HorizontalBoxes [N, 4], xyxy pixels): the record's box,
      or the mask's box when the record has none.
    - ``gt_mask_valid`` (np.ndarray bool [N]).

    The image size is ``ori_shape`` (from ``LoadImageFromFile``) if present,
    else the record's ``height``/``width``; both must agree. An empty decoded
    mask, a polygon or box outside the image (by more than
    ``bounds_tolerance`` pixels), an RLE of another size or whose run
    lengths do not cover exactly ``h * w`` pixels (checked before
    pycocotools decodes it) raises :class:`GroundingDataError` naming the
    annotation file, the record id, the field and the annotation id.

    Args:
        mask_from_box (bool): Fill the box for instances without a mask.
        bounds_tolerance (float): Pixels a coordinate may exceed the image.
    """

    def __init__(self, mask_from_box: bool = False,
                 bounds_tolerance: float = 1.0) -> None:
        self.mask_from_box = mask_from_box
        self.bounds_tolerance = bounds_tolerance

    def _image_size(self, results: dict) -> Tuple[int, int]:
        record = (results.get('height'), results.get('width'))
        shape = results.get('ori_shape')
        if shape is not None:
            shape = (int(shape[0]), int(shape[1]))
            if None not in record and tuple(map(int, record)) != shape:
                raise GroundingDataError.from_results(
                    results, 'height/width',
                    f'record says {record[0]}x{record[1]} but the image is '
                    f'{shape[0]}x{shape[1]}')
            return shape
        if None in record:
            raise GroundingDataError.from_results(
                results, 'height/width',
                'image size unknown: no ori_shape and no height/width')
        return int(record[0]), int(record[1])

    def _check_xy(self, results, field, xs, ys, h, w) -> None:
        tol = self.bounds_tolerance
        if (len(xs) and (min(xs) < -tol or max(xs) > w + tol or min(ys) < -tol
                         or max(ys) > h + tol)):
            raise GroundingDataError.from_results(
                results, field,
                f'coordinates x in [{min(xs)}, {max(xs)}], y in [{min(ys)}, '
                f'{max(ys)}] fall outside the {h}x{w} image')

    def _decode(self, results: dict, k: int, mask, h: int, w: int
                ) -> np.ndarray:
        field = f'instances[{k}].mask'
        ann_id = (results.get('instances') or [{}])[k].get('ann_id')
        if ann_id is not None:
            field += f' (ann_id={ann_id!r})'
        if isinstance(mask, dict):
            size = tuple(int(v) for v in mask.get('size', ()))
            if size != (h, w):
                raise GroundingDataError.from_results(
                    results, field,
                    f'RLE size {size} != image size {(h, w)}')
            try:  # pycocotools decodes without bounds checks
                check_rle(mask, h, w)
            except RecordError as err:
                raise GroundingDataError.from_results(
                    results, field, err.message, value=err.value) from None
            counts = mask.get('counts')
            if isinstance(counts, list):
                rle = mask_utils.frPyObjects(mask, h, w)
            elif isinstance(counts, (str, bytes)):
                rle = dict(size=[h, w], counts=counts.encode()
                           if isinstance(counts, str) else counts)
            else:
                raise GroundingDataError.from_results(
                    results, field, f'RLE counts of type '
                    f'{type(counts).__name__}; expected str, bytes or list')
            decoded = mask_utils.decode(rle)
        elif isinstance(mask, (list, tuple)):
            if mask and isinstance(mask[0], (int, float)):
                mask = [mask]  # a single flat polygon
            polygons = [list(map(float, p)) for p in mask]
            if not polygons or any(
                    len(p) < 6 or len(p) % 2 for p in polygons):
                raise GroundingDataError.from_results(
                    results, field, 'polygons need >= 3 (x, y) points each')
            xs = [x for p in polygons for x in p[0::2]]
            ys = [y for p in polygons for y in p[1::2]]
            self._check_xy(results, field, xs, ys, h, w)
            rles = mask_utils.frPyObjects(polygons, h, w)
            decoded = mask_utils.decode(mask_utils.merge(rles))
        else:
            raise GroundingDataError.from_results(
                results, field, f'mask of type {type(mask).__name__}; '
                'expected a polygon list, an RLE dict or None')
        if decoded.ndim == 3:
            decoded = decoded.any(axis=2)
        decoded = decoded.astype(np.uint8)
        if not decoded.any():
            raise GroundingDataError.from_results(results, field,
                                                  'the mask is empty')
        return decoded

    @staticmethod
    def _box_of(mask: np.ndarray) -> np.ndarray:
        ys, xs = np.nonzero(mask)
        return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
                        dtype=np.float32)

    def _box(self, results: dict, k: int, bbox: Optional[Sequence[float]],
             h: int, w: int) -> Optional[np.ndarray]:
        if bbox is None:
            return None
        field = f'instances[{k}].bbox'
        box = np.asarray(bbox, dtype=np.float32).reshape(-1)
        if box.shape != (4, ) or not np.all(np.isfinite(box)):
            raise GroundingDataError.from_results(
                results, field, f'expected [x1, y1, x2, y2], got {bbox}')
        if box[2] <= box[0] or box[3] <= box[1]:
            raise GroundingDataError.from_results(
                results, field, f'box {bbox} has no area (xyxy expected)')
        self._check_xy(results, field, box[0::2].tolist(),
                       box[1::2].tolist(), h, w)
        return np.clip(box, 0, [w, h, w, h]).astype(np.float32)

    def transform(self, results: dict) -> dict:
        h, w = self._image_size(results)
        instances = results.get('instances') or []
        masks = np.zeros((len(instances), h, w), dtype=np.uint8)
        boxes = np.zeros((len(instances), 4), dtype=np.float32)
        valid = np.zeros(len(instances), dtype=bool)
        for k, inst in enumerate(instances):
            box = self._box(results, k, inst.get('bbox'), h, w)
            mask = inst.get('mask')
            if mask is not None:
                masks[k] = self._decode(results, k, mask, h, w)
                valid[k] = True
            elif self.mask_from_box and box is not None:
                x1, y1 = np.floor(box[:2]).astype(int)
                x2, y2 = np.ceil(box[2:]).astype(int)
                masks[k, y1:y2, x1:x2] = 1
                valid[k] = True
            elif box is None:
                raise GroundingDataError.from_results(
                    results, f'instances[{k}]', 'instance has neither a mask '
                    'nor a bbox')
            boxes[k] = box if box is not None else self._box_of(masks[k])
        results['gt_masks'] = BitmapMasks(masks, h, w)
        results['gt_bboxes'] = HorizontalBoxes(boxes)
        results['gt_mask_valid'] = valid
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(mask_from_box='
                f'{self.mask_from_box}, bounds_tolerance='
                f'{self.bounds_tolerance})')
