"""Read prediction/GT fields from data samples (dicts or data elements).

mmengine's ``Evaluator.process`` turns each ``DetDataSample`` into a dict
(``to_dict``), so metainfo keys, ``pred_instances`` and ``gt_instances`` are
top-level keys; offline pickles may hold either form. Masks may be tensors,
arrays, mmdet ``BitmapMasks``/``PolygonMasks`` or a list of COCO RLE dicts
(mmdet's ``DumpDetResults`` encodes predicted masks that way).
"""
from typing import Any, List, Optional, Tuple

import numpy as np
import torch

from mmgrounding.structures.markup import clean_official_caption
from .mask_ops import RLE, encode_rle, to_bool_masks


def get_field(sample: Any, key: str, default: Any = None) -> Any:
    """``sample[key]`` for dicts, ``getattr`` for data elements."""
    if isinstance(sample, dict):
        return sample.get(key, default)
    return getattr(sample, key, default)


def sample_id(sample: Any, key: str = 'img_id') -> Any:
    """Return a hashable, plain-python id (numpy/tensor scalars unwrapped)."""
    value = get_field(sample, key)
    if value is None:
        raise KeyError(f'data sample has no `{key}`')
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def masks_to_rles(masks: Any, shape: Optional[Tuple[int, int]], where: str,
                  field: str) -> List[RLE]:
    """Compressed RLEs of a mask container, checked against ``shape``.

    Args:
        masks: tensor/array [N, H, W], ``BitmapMasks``, RLE list or None.
        shape: expected (H, W) (the original image size), or None.
        where: sample description for error messages.
        field: field name for error messages.
    """
    if masks is None:
        return []
    if isinstance(masks, (list, tuple)) and (len(masks) == 0 or isinstance(
            masks[0], dict)):
        rles = []
        for rle in masks:
            if 'counts' not in rle or 'size' not in rle:
                raise ValueError(f'{where}: `{field}` holds a dict that is '
                                 'not a COCO RLE (needs size and counts)')
            if isinstance(rle['counts'], list):
                from pycocotools import mask as mask_utils
                rle = mask_utils.frPyObjects(rle, *rle['size'])
            rles.append(dict(rle))
        got = {tuple(r['size']) for r in rles}
    else:
        arr = to_bool_masks(masks, field)
        got = {tuple(arr.shape[1:])} if len(arr) else set()
        rles = encode_rle(arr) if len(arr) else []
    if shape is not None and got and got != {tuple(shape)}:
        raise ValueError(f'{where}: `{field}` has size {sorted(got)}, '
                         f'expected the original image size {tuple(shape)}')
    return rles


def image_shape(sample: Any) -> Optional[Tuple[int, int]]:
    """(H, W) from ``ori_shape`` (or ``height``/``width``), else None."""
    shape = get_field(sample, 'ori_shape')
    if shape is not None:
        return int(shape[0]), int(shape[1])
    h, w = get_field(sample, 'height'), get_field(sample, 'width')
    if h is not None and w is not None:
        return int(h), int(w)
    return None


def predicted_caption(sample: Any) -> str:
    """``pred_caption``, else ``pred_text`` cleaned as the official GCG
    evaluation does (``structures.markup.clean_official_caption``), else ''.
    """
    caption = get_field(sample, 'pred_caption')
    if caption is not None:
        return str(caption)
    text = get_field(sample, 'pred_text')
    return clean_official_caption(text) if text is not None else ''


def str_list(value: Any, where: str, field: str) -> List[str]:
    """A list of strings from a list/tuple (None gives [])."""
    if value is None:
        return []
    if isinstance(value, str):
        raise TypeError(f'{where}: `{field}` must be a list of strings, '
                        f'got a single string {value!r}')
    return [str(v) for v in value]


def instance_field(instances: Any, key: str) -> Any:
    """Field of an ``InstanceData`` or of its dict form, else None."""
    if instances is None:
        return None
    return get_field(instances, key)


def as_numpy(value: Any, dtype=np.float64) -> np.ndarray:
    """Tensor/array/list/boxes object to a numpy array."""
    if value is None:
        return np.zeros((0, ), dtype=dtype)
    if hasattr(value, 'tensor'):  # mmdet BaseBoxes
        value = value.tensor
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def boxes_array(value: Any) -> np.ndarray:
    """Boxes [N, 4] (xyxy) from any container; empty gives [0, 4]."""
    arr = as_numpy(value)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    return arr.reshape(-1, 4)
