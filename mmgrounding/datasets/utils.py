"""Helpers shared by the dataset loaders: record errors, geometry checks.

Grounding markup is parsed by ``mmgrounding.structures.markup``.

Everything here works on plain Python values (lists, dicts, strings) so that
records stay ``serialize_data`` friendly; masks are never decoded to arrays
except to measure their area with pycocotools.
"""
import math
import zlib
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

IMAGE_TOKEN = '<image>'


class RecordError(ValueError):
    """A record-level problem, before the dataset adds file and record id.

    Args:
        field (str): The record field that is wrong.
        message (str): What is wrong, with the offending values.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f'{field}: {message}')


def default_ann_file(dataset: str, files: Dict[str, Dict[str, str]],
                     format: str, split: str,
                     ann_file: Optional[str]) -> str:
    """Check ``format``/``split`` against a source's released files and
    return ``ann_file`` or, when it is empty, that split's default file."""
    if format not in files:
        raise ValueError(f'{dataset}: unknown format {format!r}; expected '
                         f'one of {list(files)}')
    if split not in files[format]:
        raise ValueError(
            f'{dataset}: unknown split {split!r} for format {format!r}; '
            f'expected one of {list(files[format])}')
    return ann_file or files[format][split]


def xywh_to_xyxy(bbox: Sequence[float]) -> List[float]:
    """COCO ``[x, y, w, h]`` to ``[x1, y1, x2, y2]`` (plain floats)."""
    if len(bbox) != 4:
        raise RecordError('bbox', f'expected 4 numbers, got {list(bbox)!r}')
    x, y, w, h = (float(v) for v in bbox)
    return [x, y, x + w, y + h]


def stable_seed(*keys: Any) -> int:
    """A process-independent 32-bit seed from ``keys`` (``hash`` is salted)."""
    return zlib.crc32(repr(keys).encode('utf-8')) & 0xFFFFFFFF


def seeded_rng(*keys: Any) -> np.random.RandomState:
    """A ``RandomState`` seeded by ``keys`` (e.g. dataset seed and image id),
    so that a record's sampled expressions / templates are the same in every
    run and every worker."""
    return np.random.RandomState(stable_seed(*keys))


def move_image_token_first(text: str) -> str:
    """Put the single ``<image>`` placeholder at the start of a turn,
    followed by a newline (the LLaVA convention)."""
    if IMAGE_TOKEN not in text:
        return text
    rest = text.replace(IMAGE_TOKEN, '').strip()
    return f'{IMAGE_TOKEN}\n{rest}'


def locate_phrase(text: str, phrase: str, start: int = 0) -> Optional[int]:
    """Case-insensitive search of ``phrase`` in ``text`` from ``start``, then
    from the beginning; returns the char offset or ``None``."""
    low, needle = text.lower(), phrase.lower().strip()
    if not needle:
        return None
    pos = low.find(needle, start)
    if pos < 0:
        pos = low.find(needle)
    return None if pos < 0 else pos


def _finite(values: Sequence[Any]) -> bool:
    try:
        return all(math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False


def check_bbox(bbox: Any, height: int, width: int, tol: float) -> None:
    """Raise :class:`RecordError` if ``bbox`` (xyxy) is malformed, empty or
    outside the image by more than ``tol`` pixels."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 \
            or not _finite(bbox):
        raise RecordError('bbox', f'expected 4 finite numbers, got {bbox!r}')
    x1, y1, x2, y2 = (float(v) for v in bbox)
    if x2 <= x1 or y2 <= y1:
        raise RecordError('bbox', f'empty box {bbox!r}')
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        raise RecordError(
            'bbox', f'box {bbox!r} outside the {width}x{height} image')


def mask_area(mask: Union[list, dict], height: int, width: int) -> float:
    """Pixel area of a COCO polygon list or RLE dict (via pycocotools)."""
    from pycocotools import mask as mask_utils
    if isinstance(mask, list):
        rles = mask_utils.frPyObjects(mask, height, width)
        return float(mask_utils.area(mask_utils.merge(rles)))
    rle = mask
    if isinstance(rle.get('counts'), list):
        rle = mask_utils.frPyObjects(rle, *rle['size'])
    elif isinstance(rle.get('counts'), str):
        rle = dict(size=rle['size'], counts=rle['counts'].encode('utf-8'))
    return float(mask_utils.area(rle))


def check_mask(mask: Any, height: int, width: int, tol: float,
               check_area: bool = True) -> None:
    """Raise :class:`RecordError` if ``mask`` (COCO polygons or RLE) is
    malformed, empty, out of the image, or of another image size."""
    if isinstance(mask, list):
        if len(mask) == 0:
            raise RecordError('mask', 'empty polygon list')
        for poly in mask:
            if not isinstance(poly, (list, tuple)) or len(poly) < 6 \
                    or len(poly) % 2 or not _finite(poly):
                raise RecordError(
                    'mask', 'a polygon needs >= 3 (x, y) pairs of finite '
                    f'numbers, got {str(poly)[:80]}')
            xs = np.asarray(poly[0::2], dtype=np.float64)
            ys = np.asarray(poly[1::2], dtype=np.float64)
            if xs.min() < -tol or ys.min() < -tol or \
                    xs.max() > width + tol or ys.max() > height + tol:
                raise RecordError(
                    'mask', f'polygon outside the {width}x{height} image '
                    f'(x in [{xs.min():g}, {xs.max():g}], y in '
                    f'[{ys.min():g}, {ys.max():g}])')
    elif isinstance(mask, dict):
        size = mask.get('size')
        if 'counts' not in mask or not isinstance(size, (list, tuple)) \
                or len(size) != 2:
            raise RecordError('mask',
                              'an RLE needs "size": [h, w] and "counts"')
        if [int(size[0]), int(size[1])] != [int(height), int(width)]:
            raise RecordError(
                'mask', f'RLE size {list(size)} differs from the image '
                f'size [{height}, {width}]')
    else:
        raise RecordError(
            'mask',
            f'expected COCO polygons or RLE, got {type(mask).__name__}')
    if check_area and mask_area(mask, height, width) <= 0:
        raise RecordError('mask', 'empty mask (area 0)')


def check_record(record: Dict[str, Any], tol: float = 1.0,
                 check_mask_area: bool = True) -> None:
    """Check a record against docs/data_contract.md section 1.

    Raises :class:`RecordError` naming the field: sizes, conversation roles
    (user first, alternating), phrase spans inside their turn and matching
    their ``text``, ``instance_ids`` / region ``instance_id`` in range,
    instance boxes and masks inside the image, and one region per
    ``<bbox>``/``<obj>`` placeholder when ``region_token`` is given.
    """
    height, width = record.get('height'), record.get('width')
    if not isinstance(height, int) or not isinstance(width, int) \
            or height <= 0 or width <= 0:
        raise RecordError('height/width',
                          f'invalid image size {height!r}x{width!r}')
    convs = record.get('conversations') or []
    if not convs:
        raise RecordError('conversations', 'no turns')
    for i, turn in enumerate(convs):
        role = turn.get('role')
        expected = 'user' if i % 2 == 0 else 'assistant'
        if role != expected:
            raise RecordError(
                'conversations',
                f'turn {i} has role {role!r}, expected {expected!r} '
                '(turns alternate, user first)')
        if not isinstance(turn.get('text'), str):
            raise RecordError('conversations', f'turn {i} has no text')
    instances = record.get('instances', [])
    for k, inst in enumerate(instances):
        try:
            if inst.get('mask') is not None:
                check_mask(inst['mask'], height, width, tol, check_mask_area)
            if inst.get('bbox') is not None:
                check_bbox(inst['bbox'], height, width, tol)
        except RecordError as err:
            raise RecordError(
                f'instances[{k}].{err.field}',
                f'{err.message} (ann_id={inst.get("ann_id")!r})') from None
    for k, phrase in enumerate(record.get('phrases', [])):
        turn = phrase.get('turn')
        if not isinstance(turn, int) or not 0 <= turn < len(convs):
            raise RecordError(f'phrases[{k}].turn',
                              f'turn {turn!r} not in conversation')
        text = convs[turn]['text']
        start, end = phrase.get('start'), phrase.get('end')
        if not (isinstance(start, int) and isinstance(end, int)
                and 0 <= start < end <= len(text)):
            raise RecordError(
                f'phrases[{k}]', f'span [{start!r}, {end!r}) outside turn '
                f'{turn} of length {len(text)}')
        if text[start:end] != phrase.get('text'):
            raise RecordError(
                f'phrases[{k}].text', f'{phrase.get("text")!r} != span '
                f'text {text[start:end]!r}')
        for iid in phrase.get('instance_ids', []):
            if not isinstance(iid, int) or not 0 <= iid < len(instances):
                raise RecordError(
                    f'phrases[{k}].instance_ids',
                    f'{iid!r} not in [0, {len(instances)})')
    regions = record.get('regions', [])
    for k, region in enumerate(regions):
        iid = region.get('instance_id')
        if iid is not None and not (isinstance(iid, int)
                                    and 0 <= iid < len(instances)):
            raise RecordError(f'regions[{k}].instance_id',
                              f'{iid!r} not in [0, {len(instances)})')
        try:
            check_bbox(region.get('bbox'), height, width, tol)
        except RecordError as err:
            raise RecordError(f'regions[{k}].bbox', err.message) from None
    token = record.get('region_token')
    if token:
        count = sum(t['text'].count(token) for t in convs
                    if t['role'] == 'user')
        if count != len(regions):
            raise RecordError(
                'regions', f'{count} {token} placeholders but '
                f'{len(regions)} regions')


def index_coco(data: dict) -> Tuple[List[dict], Dict[Any, List[dict]]]:
    """``(images in file order, annotations grouped by image id in file
    order)`` of a COCO-style dict (no pycocotools index needed)."""
    anns: Dict[Any, List[dict]] = {}
    for ann in data.get('annotations', []):
        anns.setdefault(ann['image_id'], []).append(ann)
    return list(data.get('images', [])), anns


def mask_to_bbox(mask: Union[list, dict], height: int,
                 width: int) -> List[float]:
    """xyxy box of a COCO polygon list or RLE (pycocotools ``toBbox``)."""
    from pycocotools import mask as mask_utils
    if isinstance(mask, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(mask, height, width))
    elif isinstance(mask, dict):
        if isinstance(mask.get('counts'), list):
            rle = mask_utils.frPyObjects(mask, *mask['size'])
        elif isinstance(mask.get('counts'), str):
            rle = dict(size=mask['size'], counts=mask['counts'].encode())
        else:
            rle = mask
    else:
        raise RecordError('mask', f'cannot read a box from {type(mask)}')
    return xywh_to_xyxy(mask_utils.toBbox(rle).tolist())
