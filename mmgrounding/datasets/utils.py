"""Helpers shared by the dataset loaders: safe annotation loading, path
resolution, record errors, geometry checks.

Grounding markup is parsed by ``mmgrounding.structures.markup``.

Everything here works on plain Python values (lists, dicts, strings) so that
records stay ``serialize_data`` friendly; masks are never decoded to arrays
except to measure their area with pycocotools.

Errors: a problem inside one record raises :class:`RecordError` (field,
message, value); the dataset adds the annotation file and the record id
(:class:`~mmgrounding.datasets.BaseGroundingDataset`) and turns it into a
:class:`~mmgrounding.structures.errors.GroundingDataError`. A defect of a
whole file raises ``GroundingDataError`` at once.
"""
import json
import math
import os.path as osp
import posixpath
import re
import zlib
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mmgrounding.structures.errors import GroundingDataError

IMAGE_TOKEN = '<image>'
_NOT_GIVEN = GroundingDataError._NOT_GIVEN


class RecordError(ValueError):
    """A record-level problem, before the dataset adds file and record id.

    Args:
        field (str): The field that is wrong, named as in the annotation
            file (``'segmentation'``, ``'gd_ls[1]'``, ``'file_name'``...).
        message (str): What is wrong and what was expected.
        value (Any, optional): The offending value (quoted when short).
        file (str, optional): The file holding the defect when it is not
            the record's own annotation file (e.g. COCO ``instances.json``
            next to a GVC conversation file).
        record (Any, optional): The id, as written in ``file``, of the entry
            holding the defect when it is not the record itself (e.g. an
            annotation id).
    """

    def __init__(self, field: str, message: str, value: Any = _NOT_GIVEN,
                 file: Optional[str] = None, record: Any = None) -> None:
        self.field = field
        self.message = message
        self.value = value
        self.file = file
        self.record = record
        super().__init__(f'{field}: {message}')

    def to_error(self, source: Optional[str], file: str,
                 record: Any) -> GroundingDataError:
        """The :class:`GroundingDataError` of this problem in ``record`` of
        ``file`` (or in the entry this error names itself)."""
        message = self.message
        if self.record is not None and (self.file or file, self.record) != \
                (file, record):
            message += f' (used by record {record!r} of {osp.basename(file)})'
        kwargs = {} if self.value is _NOT_GIVEN else dict(value=self.value)
        return GroundingDataError(
            message, source=source, file=self.file or file,
            record=self.record if self.record is not None else record,
            field=self.field, **kwargs)


# ---------------------------------------------------------------------------
# annotation files
class _RepeatedKeys(dict):
    """A JSON object in which some key occurs more than once (``json`` would
    silently keep the last value); ``repeated`` lists those keys."""

    repeated: List[str] = []


def _pairs_hook(pairs: List[Tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen, repeated = set(), []
    for key, _ in pairs:
        if key in seen and key not in repeated:
            repeated.append(key)
        seen.add(key)
    obj = _RepeatedKeys(pairs)
    obj.repeated = repeated
    return obj


def _json_type(value: Any) -> str:
    return {dict: 'object', list: 'array', str: 'string', int: 'number',
            float: 'number', bool: 'boolean', type(None): 'null'}.get(
                type(value), type(value).__name__)


class AnnotationFile:
    """One JSON annotation file, read so that no defect passes silently.

    Truncated or invalid JSON and a top level of the wrong type raise
    :class:`GroundingDataError` naming the file and what was expected. Keys
    repeated inside one JSON object (``json`` keeps only the last) are
    remembered; :meth:`check_keys` raises on the record holding one.

    Args:
        path (str): The file (any mmengine file backend).
        expected (type or tuple): Allowed type(s) of the top level.
        what (str): What the file should hold, for messages (e.g. ``'a
            list of {file_name, caption, groundings} objects'``).
    """

    def __init__(self, path: str, expected: Union[type, Tuple[type, ...]],
                 what: str) -> None:
        from mmengine.fileio import get_text
        self.path = path
        self.name = osp.basename(str(path))
        self._repeated = False
        try:
            text = get_text(path)
        except UnicodeDecodeError as err:
            raise GroundingDataError(
                f'not UTF-8 text ({err.reason} at byte {err.start}); '
                f'expected JSON holding {what}', file=path) from None
        if not text.strip():
            raise GroundingDataError(
                f'the file is empty; expected JSON holding {what}',
                file=path)

        def hook(pairs):
            obj = _pairs_hook(pairs)
            if type(obj) is _RepeatedKeys:
                self._repeated = True
            return obj

        try:
            self.data = json.loads(text, object_pairs_hook=hook)
        except json.JSONDecodeError as err:
            raise GroundingDataError(
                f'invalid or truncated JSON ({err.msg} at line '
                f'{err.lineno}, column {err.colno}); expected {what}',
                file=path) from None
        if not isinstance(self.data, expected):
            raise GroundingDataError(
                f'the top level is a JSON {_json_type(self.data)}; expected '
                f'{what}', file=path)
        if isinstance(self.data, _RepeatedKeys):
            key = self.data.repeated[0]
            raise GroundingDataError(
                'top-level key occurs more than once (JSON readers silently '
                'keep only the last)', file=path, record=key, field=key)

    def check_keys(self, obj: Any, prefix: str = '',
                   depth: int = -1) -> None:
        """Raise :class:`RecordError` if a JSON object inside ``obj``
        (``depth`` levels deep; -1 = all) repeats a key; the field is the
        path of that object (``groundings``, ``conversations[2]``...)."""
        if not self._repeated:
            return
        found = _find_repeated(obj, prefix, depth)
        if found is None:
            return
        where, key = found
        field = f'{where}.{key}' if where else key
        raise RecordError(
            field, f'key {key!r} occurs more than once in one JSON object '
            '(JSON readers silently keep only the last)', value=key)


def _find_repeated(obj: Any, where: str,
                   depth: int) -> Optional[Tuple[str, str]]:
    if isinstance(obj, _RepeatedKeys):
        return where, obj.repeated[0]
    if depth == 0:
        return None
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = ((f'[{i}]', v) for i, v in enumerate(obj))
    else:
        return None
    for key, value in items:
        if isinstance(value, (dict, list)):
            sub = f'{where}{key}' if key.startswith('[') else (
                f'{where}.{key}' if where else key)
            found = _find_repeated(value, sub, depth - 1)
            if found is not None:
                return found
    return None


def load_pickle(path: str, what: str) -> Any:
    """Unpickle ``path`` (mmengine file backends) or raise
    :class:`GroundingDataError` naming the file and what was expected."""
    import pickle

    from mmengine.fileio import get
    try:
        return pickle.loads(get(path))
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, ImportError, IndexError) as err:
        raise GroundingDataError(
            f'cannot unpickle ({type(err).__name__}: {err}); expected a '
            f'pickle of {what}', file=path) from None


def resolve_path(root: str, name: Any, field: str) -> str:
    """``root/name`` for a relative file name read from an annotation.

    Refuses, before anything is opened, a name that is not a non-empty
    string, an absolute path (``/x``, ``C:\\x``, ``s3://x``) or one whose
    ``..`` parts leave ``root``: :class:`RecordError` naming ``field`` and
    the path.
    """
    if not isinstance(name, str) or not name.strip():
        raise RecordError(field, 'expected a relative file name',
                          value=name)
    posix = name.replace('\\', '/')
    if posix.startswith('/') or re.match(r'^[A-Za-z]:/', posix) \
            or '://' in posix or osp.isabs(name):
        raise RecordError(
            field, f'absolute path refused: file names must be relative to '
            f'the data root {root!r}', value=name)
    norm = posixpath.normpath(posix)
    if norm == '..' or norm.startswith('../'):
        raise RecordError(
            field, f'path escapes the data root {root!r}', value=name)
    return osp.join(root, name) if root else name


def require_text(value: Any, field: str, allow_empty: bool = False) -> str:
    """``value`` if it is a string (non-empty unless ``allow_empty``), else
    :class:`RecordError`: a missing field never becomes the text "None"."""
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise RecordError(
            field, 'missing' if value is None else 'expected a non-empty '
            'string', value=value)
    return value


def require_dict(value: Any, field: str) -> dict:
    """``value`` if it is a JSON object, else :class:`RecordError`."""
    if not isinstance(value, dict):
        raise RecordError(field, f'expected a JSON object, got a '
                          f'{_json_type(value)}', value=value)
    return value


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


def rle_counts(counts: Union[str, bytes]) -> np.ndarray:
    """Run lengths (int64 [m]) of a compressed COCO RLE string.

    The inverse of pycocotools' ``rleToString``, vectorised with numpy
    (about 30 us per SAM mask) so that a malformed string is caught before
    pycocotools decodes it without bounds checks. Each run is written in
    6-bit digits (value + 48): 5 payload bits, bit 0x20 = "more digits
    follow", bit 0x10 of the last digit = sign; from the fourth run on, a
    run is stored as the difference to the run two places before.

    Raises:
        ValueError: a character outside the alphabet, or a truncated run.
    """
    if isinstance(counts, str):
        counts = counts.encode('ascii', errors='replace')
    digits = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if digits.size == 0:
        return np.zeros(0, dtype=np.int64)
    if digits.min() < 0 or digits.max() > 63:
        raise ValueError('invalid character in the RLE string')
    last = (digits & 0x20) == 0
    if not last[-1]:
        raise ValueError('truncated RLE string')
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    length = ends - starts + 1
    if length.max() > 12:
        raise ValueError('an RLE run longer than 12 digits')
    pos = np.arange(digits.size) - np.repeat(starts, length)
    runs = np.add.reduceat((digits & 0x1f) << (5 * pos), starts)
    negative = (digits[ends] & 0x10) != 0
    runs = runs - (negative.astype(np.int64) << (5 * length))
    out = runs.copy()
    if out.size > 3:  # out[i] += out[i - 2] for i > 2
        out[3::2] = np.cumsum(runs[1::2])[1:]
    if out.size > 4:
        out[4::2] = np.cumsum(runs[2::2])[1:]
    return out


def check_rle(mask: dict, height: int, width: int) -> None:
    """Raise :class:`RecordError` unless ``mask`` is an RLE of a
    ``height`` x ``width`` image whose run lengths are non-negative and add
    up to exactly ``height * width`` pixels."""
    size = mask.get('size')
    if 'counts' not in mask or not isinstance(size, (list, tuple)) \
            or len(size) != 2:
        raise RecordError('mask', 'an RLE needs "size": [h, w] and "counts"',
                          value=mask)
    if [int(size[0]), int(size[1])] != [int(height), int(width)]:
        raise RecordError(
            'mask', f'RLE size {list(size)} differs from the image '
            f'size [{height}, {width}]', value=list(size))
    counts = mask['counts']
    try:
        if isinstance(counts, list):
            runs = [int(v) for v in counts]
        elif isinstance(counts, (str, bytes)):
            runs = rle_counts(counts)
        else:
            raise ValueError(f'counts of type {type(counts).__name__}; '
                             'expected a string or a list')
    except (TypeError, ValueError) as err:
        raise RecordError('mask', f'malformed RLE counts ({err})',
                          value=counts) from None
    if len(runs) and min(runs) < 0:
        raise RecordError('mask', 'negative RLE run length', value=counts)
    total = int(sum(runs))
    if total != int(height) * int(width):
        raise RecordError(
            'mask', f'RLE counts cover {total} pixels but the size '
            f'{list(size)} has {int(height) * int(width)}', value=counts)


def check_mask(mask: Any, height: int, width: int, tol: float,
               check_area: bool = True) -> None:
    """Raise :class:`RecordError` if ``mask`` (COCO polygons or RLE) is
    malformed, empty, out of the image, or of another image size; with
    ``check_area`` an RLE's run lengths must cover the image exactly."""
    if isinstance(mask, list):
        if len(mask) == 0:
            raise RecordError('mask', 'empty polygon list', value=mask)
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
        if check_area:
            check_rle(mask, height, width)
        else:
            size = mask.get('size')
            if 'counts' not in mask or not isinstance(size, (list, tuple)) \
                    or len(size) != 2:
                raise RecordError('mask',
                                  'an RLE needs "size": [h, w] and "counts"')
            if [int(size[0]), int(size[1])] != [int(height), int(width)]:
                raise RecordError(
                    'mask', f'RLE size {list(size)} differs from the image '
                    f'size [{height}, {width}]', value=list(size))
    else:
        raise RecordError(
            'mask',
            f'expected COCO polygons or RLE, got {type(mask).__name__}',
            value=mask)
    if check_area and mask_area(mask, height, width) <= 0:
        raise RecordError('mask', 'empty mask (area 0)')


def check_image_token(turns: Sequence[Dict[str, Any]], key: str = 'text',
                      role_key: str = 'role', user: str = 'user') -> None:
    """Raise :class:`RecordError` unless ``<image>`` occurs at most once, and
    only in the first user turn (caught at index time, not mid-training)."""
    for i, turn in enumerate(turns):
        text = turn.get(key)
        if not isinstance(text, str) or IMAGE_TOKEN not in text:
            continue
        count = text.count(IMAGE_TOKEN)
        if i > 0 or turn.get(role_key) != user:
            raise RecordError(
                f'conversations[{i}]', f'{IMAGE_TOKEN} outside the first '
                'user turn (one image per sample, placed in the first '
                'question)', value=text)
        if count > 1:
            raise RecordError(
                f'conversations[{i}]',
                f'{count} {IMAGE_TOKEN} placeholders; one image per sample',
                value=text)


def check_record(record: Dict[str, Any], tol: float = 1.0,
                 check_mask_area: bool = True,
                 check_instances: bool = True) -> None:
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
    check_image_token(convs)
    instances = record.get('instances', [])
    for k, inst in enumerate(instances if check_instances else ()):
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


def index_coco(data: Any, file: str, need_images: bool = True,
               need_ann_ids: bool = True) -> Tuple[List[dict],
                                                  Dict[Any, List[dict]]]:
    """``(images in file order, annotations grouped by image id in file
    order)`` of a COCO-style dict (no pycocotools index needed).

    Nothing is silently merged or dropped: a missing ``images`` /
    ``annotations`` list, an entry that is not an object or has no ``id``,
    a repeated image or annotation id, and an annotation whose
    ``image_id`` names no image raise :class:`GroundingDataError` naming
    ``file``, the entry and the field.
    """
    name = osp.basename(str(file))
    if not isinstance(data, dict):
        raise GroundingDataError(
            f'the top level is a JSON {_json_type(data)}; expected a '
            'COCO-style object with "images" and "annotations"', file=file)
    images = data.get('images', None if need_images else [])
    anns_list = data.get('annotations')
    for key, value in (('images', images), ('annotations', anns_list)):
        if not isinstance(value, list):
            raise GroundingDataError(
                f'expected a COCO-style object with an "{key}" list, got '
                f'{_json_type(value)}', file=file, field=key)
    seen: Dict[Any, int] = {}
    for k, img in enumerate(images):
        _coco_entry(img, k, 'images', seen, name)
    anns: Dict[Any, List[dict]] = {}
    seen_anns: Dict[Any, int] = {}
    for k, ann in enumerate(anns_list):
        if need_ann_ids or not isinstance(ann, dict) or 'id' in ann:
            _coco_entry(ann, k, 'annotations', seen_anns, name)
        ann_id = ann.get('id', f'annotations[{k}]')
        if 'image_id' not in ann:
            raise GroundingDataError('missing', file=file, record=ann_id,
                                     field='image_id')
        if need_images and ann['image_id'] not in seen:
            raise GroundingDataError(
                'annotation of an image that is not in "images"', file=file,
                record=ann_id, field='image_id', value=ann['image_id'])
        anns.setdefault(ann['image_id'], []).append(ann)
    return list(images), anns


def _coco_entry(entry: Any, k: int, table: str, seen: Dict[Any, int],
                file: str) -> None:
    if not isinstance(entry, dict):
        raise GroundingDataError(
            f'{table}[{k}] is a JSON {_json_type(entry)}; expected an object',
            file=file, record=f'{table}[{k}]', field=table, value=entry)
    if 'id' not in entry:
        raise GroundingDataError(f'{table}[{k}] has no id', file=file,
                                 record=f'{table}[{k}]', field='id')
    key = entry['id']
    try:
        first = seen.setdefault(key, k)
    except TypeError:
        raise GroundingDataError(f'{table}[{k}] has an id that is not a '
                                 'number or string', file=file,
                                 record=f'{table}[{k}]', field='id',
                                 value=key) from None
    if first != k:
        raise GroundingDataError(
            f'id repeated in "{table}" ({table}[{first}] and {table}[{k}]); '
            'ids must be unique', file=file, record=key, field='id')


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
