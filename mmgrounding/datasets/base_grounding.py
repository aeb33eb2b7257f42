"""Common base of every mmgrounding dataset loader.

A subclass reads one official annotation format in :meth:`load_records` and
yields ``(file, record_id, callable)`` triples; the base class runs each
callable, turns :class:`~mmgrounding.datasets.utils.RecordError` into
:class:`~mmgrounding.structures.errors.GroundingDataError` naming the file's
base name, the record id as written in it and the field, checks the result
against docs/data_contract.md §1, and either raises or (``skip_invalid=True``)
skips the record with a warning. Sample-time failures (an unreadable image,
a transform rejecting the record) get the same treatment in
:meth:`prepare_data` / :meth:`__getitem__`.
"""
import logging
import os
import os.path as osp
from typing import (Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple)

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmgrounding.structures.errors import GroundingDataError
from .utils import (RecordError, check_bbox, check_mask, check_record,
                    resolve_path, stable_seed)

#: Tasks whose records must carry grounding targets or visual prompts.
GROUNDED_TASKS = ('gcg', 'refseg', 'rec', 'phrase_grounding', 'gvc', 'gvc_r',
                  'region_caption')

RecordFn = Callable[[], List[Dict[str, Any]]]


class BaseGroundingDataset(BaseDataset):
    """Base of the grounding datasets (model-neutral records).

    Records follow docs/data_contract.md §1. Besides the contract keys a
    loader may add source-specific ones (``gt_labels``, ``phrase_ids``,
    ``ref_id``, ...) and, when ``regions`` is not empty, ``region_token``:
    the placeholder literally written in the user turns (``<bbox>`` or
    ``<obj>``). Every record is checked at load time (roles alternate from
    the user, spans inside their turn and equal to ``text``, ids in range,
    boxes and masks inside the image and not empty, one region per
    placeholder).

    Every record also carries ``ann_file`` (base name of the annotation
    file it comes from) and ``record_id`` (its id as written there), so
    that a transform's :meth:`GroundingDataError.from_results` names both.

    Bad input never passes silently: malformed entries, paths leaving the
    data root, repeated JSON keys or ids, and unreadable images raise
    :class:`GroundingDataError` naming file, record id and field.

    Args:
        split (str, optional): Official split name; checked against
            ``SPLITS`` (a dict ``split -> default annotation file`` or a
            tuple of names). An unknown split raises ``ValueError``; so
            does any ``split`` for a dataset without splits.
        task (str, optional): Task written in the records (``TASKS`` lists
            the allowed ones; default ``DEFAULT_TASK``).
        skip_invalid (bool): Skip (with a warning naming file, record and
            field) records that violate the data contract instead of raising
            ``GroundingDataError``; at sample time (training only) a record
            whose image or pipeline fails is skipped and another one, chosen
            deterministically from the index and ``seed``, is fetched. In
            ``test_mode`` a sample-time failure always raises (skipping
            would silently change the evaluation). Defaults to False.
        check_files (bool): Check that every image file exists (slow on
            network storage). Defaults to False.
        bounds_tolerance (float): Pixels a box or polygon may exceed the
            image border by (COCO polygons often overshoot by < 1 px).
        seed (int): Seed of every deterministic choice (sampled expressions,
            templates); combined with the image id.
        check_mask_area (bool): Measure every mask with pycocotools at load
            time to reject empty ones (about 20 us per polygon mask); turn
            off to load very large sets faster (the mask transform still
            rejects empty masks when it decodes them).
        **kwargs: :class:`mmengine.dataset.BaseDataset` arguments
            (``ann_file``, ``data_root``, ``data_prefix=dict(img_path=...)``,
            ``filter_cfg=dict(filter_empty=True, min_size=0)``, ``indices``,
            ``serialize_data``, ``pipeline``, ``test_mode``, ``lazy_init``).
    """

    SOURCE = 'grounding'
    SPLITS: Any = None
    #: the annotation key holding the image file name (for messages)
    IMAGE_FIELD = 'file_name'
    #: forward ``split`` to the parent ``__init__`` (mmdet's RefCocoDataset)
    PASS_SPLIT = False
    DEFAULT_TASK = 'gcg'
    TASKS: Tuple[str, ...] = ()

    def __init__(self,
                 *args,
                 split: Optional[str] = None,
                 task: Optional[str] = None,
                 skip_invalid: bool = False,
                 check_files: bool = False,
                 bounds_tolerance: float = 1.0,
                 seed: int = 0,
                 check_mask_area: bool = True,
                 **kwargs) -> None:
        if split is not None and self.SPLITS is None:
            raise ValueError(
                f'{type(self).__name__} has no official splits; got '
                f'split={split!r} (give ann_file only)')
        if self.SPLITS is not None and split is not None \
                and split not in self.SPLITS:
            raise ValueError(
                f'{type(self).__name__}: unknown split {split!r}; '
                f'expected one of {list(self.SPLITS)}')
        task = task or self.DEFAULT_TASK
        if self.TASKS and task not in self.TASKS:
            raise ValueError(f'{type(self).__name__}: unknown task {task!r}; '
                             f'expected one of {list(self.TASKS)}')
        self.split = split
        self.task = task
        self.skip_invalid = skip_invalid
        self.check_files = check_files
        self.bounds_tolerance = float(bounds_tolerance)
        self.seed = seed
        self.check_mask_area = check_mask_area
        self.num_skipped = 0
        if not kwargs.get('ann_file') and isinstance(self.SPLITS, dict) \
                and split is not None:
            kwargs['ann_file'] = self.SPLITS[split]
        kwargs.setdefault('data_prefix', dict(img_path=''))
        if self.PASS_SPLIT:
            kwargs['split'] = split
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------
    # to be implemented by subclasses
    def load_records(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        """Yield ``(file, record_id, fn)``: the annotation file, the record
        id exactly as written there, and ``fn()`` returning the record(s)
        parsed from that entry (it may raise ``RecordError``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        """Parse the annotation file(s) into contract records."""
        self.num_skipped = 0
        data_list: List[dict] = []
        for file, record_id, fn in self.load_records():
            try:
                records = fn()
                for record in records:
                    self._check(record, file, record_id)
            except RecordError as err:
                self._invalid(err.to_error(self.SOURCE, file, record_id))
                continue
            except GroundingDataError as err:
                self._invalid(err)
                continue
            except (KeyError, TypeError, IndexError, ValueError,
                    AttributeError) as err:
                # malformed official data: say where, not just what
                field = str(err.args[0]) if isinstance(err, KeyError) \
                    and err.args else 'record'
                what = 'missing' if isinstance(err, KeyError) else \
                    f'malformed entry ({type(err).__name__}: {err})'
                self._invalid(
                    GroundingDataError(what, source=self.SOURCE, file=file,
                                       record=record_id, field=field))
                continue
            data_list.extend(records)
        if self.num_skipped:
            print_log(
                f'{type(self).__name__}: skipped {self.num_skipped} invalid '
                f'record(s) of {self.ann_file}', logger='current',
                level=logging.WARNING)
        if not data_list:
            raise ValueError(f'{type(self).__name__}: no valid record in '
                             f'{self.ann_file} (split={self.split!r})')
        return data_list

    def _invalid(self, err: GroundingDataError) -> None:
        if not self.skip_invalid:
            raise err from None
        self.num_skipped += 1
        print_log(f'skipping invalid record: {err}', logger='current',
                  level=logging.WARNING)

    def _check(self, record: dict, file: str, record_id: Any) -> None:
        record.setdefault('source', self.SOURCE)
        record.setdefault('task', self.task)
        record.setdefault('phrases', [])
        record.setdefault('regions', [])
        record.setdefault('instances', [])
        record['ann_file'] = osp.basename(str(file))
        record['record_id'] = record_id
        if self.check_files and not osp.isfile(record['img_path']):
            raise RecordError(self.IMAGE_FIELD, 'image file not found',
                              value=osp.basename(record['img_path']))
        check_record(record, tol=self.bounds_tolerance,
                     check_mask_area=self.check_mask_area,
                     check_instances=False)

    # ------------------------------------------------------------------
    # sample time
    def prepare_data(self, idx: int) -> Any:
        """Run the pipeline on record ``idx``.

        Any failure becomes a :class:`GroundingDataError` naming the
        record's file, id and field: an image transform that fails or
        returns None names the image file (missing, empty, or not
        decodable) and the image field; another transform's error keeps its
        field (or names the transform).
        """
        info = self.get_data_info(idx)
        data = info
        for transform in getattr(self.pipeline, 'transforms', [self.pipeline]):
            try:
                data = transform(data)
            except GroundingDataError as err:
                if err.file is not None and err.record is not None:
                    raise
                raise self._sample_error(info, err.field or 'record',
                                         err.reason) from err
            except Exception as err:  # noqa: BLE001  (any transform)
                if self._is_image_transform(transform):
                    raise self._image_error(info, err) from err
                raise self._sample_error(
                    info, f'pipeline ({type(transform).__name__})',
                    f'{type(err).__name__}: {err}') from err
            if data is None:
                if self._is_image_transform(transform):
                    raise self._image_error(info, None)
                return None
        return data

    def __getitem__(self, idx: int) -> Any:
        """``prepare_data(idx)``; with ``skip_invalid`` (training) a failed
        sample is skipped with a warning and another index, drawn from
        ``(seed, idx, attempt)``, is tried (at most ``max_refetch`` times)."""
        if not self._fully_initialized:
            print_log('Please call `full_init()` method manually to '
                      'accelerate the speed.', logger='current',
                      level=logging.WARNING)
            self.full_init()
        first = idx
        for attempt in range(self.max_refetch + 1):
            try:
                data = self.prepare_data(idx)
            except GroundingDataError as err:
                if not self.skip_invalid or self.test_mode:
                    raise
                print_log(f'skipping invalid sample {idx}: {err}; fetching '
                          'another', logger='current', level=logging.WARNING)
                data = None
            if data is not None:
                return data
            if self.test_mode:
                raise GroundingDataError(
                    'the test pipeline returned no sample',
                    **self._where(self.get_data_info(idx)))
            idx = self._another(first, attempt)
        raise GroundingDataError(
            f'no valid sample after {self.max_refetch + 1} attempts starting '
            f'from index {first}; raise max_refetch or fix the data',
            **self._where(self.get_data_info(first)))

    def _another(self, first: int, attempt: int) -> int:
        n = len(self)
        if n < 2:
            return first
        step = 1 + stable_seed(self.seed, 'refetch', first, attempt) % (n - 1)
        return (first + step) % n

    @staticmethod
    def _is_image_transform(transform: Any) -> bool:
        return 'LoadImage' in type(transform).__name__

    def _where(self, info: dict) -> dict:
        return dict(source=info.get('source', self.SOURCE),
                    file=info.get('ann_file', self.ann_file),
                    record=info.get('record_id', info.get('img_id')))

    def _sample_error(self, info: dict, field: str,
                      message: str, **kwargs) -> GroundingDataError:
        return GroundingDataError(message, field=field, **self._where(info),
                                  **kwargs)

    def _image_error(self, info: dict,
                     err: Optional[BaseException]) -> GroundingDataError:
        path = info.get('img_path', '')
        name = osp.basename(str(path))
        if not osp.exists(path):
            why = 'image file not found'
        elif osp.getsize(path) == 0:
            why = 'image file is empty (0 bytes)'
        else:
            why = 'image file cannot be decoded'
        message = f'{why}: {path}'
        if err is not None:
            kind = type(err).__module__.split('.')[0] + '.' + \
                type(err).__name__
            message += f' [{kind}: {" ".join(str(err).split())[:160]}]'
        return self._sample_error(info, self.IMAGE_FIELD, message,
                                  value=name)

    # ------------------------------------------------------------------
    def filter_data(self) -> List[dict]:
        """Apply ``filter_cfg``: ``filter_empty`` drops records of grounded
        tasks with neither phrases nor regions (never in ``test_mode``);
        ``min_size`` drops images whose shorter side is smaller."""
        if self.filter_cfg is None:
            return self.data_list
        filter_empty = self.filter_cfg.get('filter_empty', False) \
            and not self.test_mode
        min_size = self.filter_cfg.get('min_size', 0)
        kept = []
        for record in self.data_list:
            if filter_empty and record['task'] in GROUNDED_TASKS and \
                    not record.get('phrases') and not record.get('regions'):
                continue
            if min(record['width'], record['height']) < min_size:
                continue
            kept.append(record)
        return kept

    # ------------------------------------------------------------------
    # helpers for subclasses
    def img_path(self, file_name: Any, field: Optional[str] = None) -> str:
        """Join ``data_prefix['img_path']`` and ``file_name`` (read from the
        annotation under ``field``, default :attr:`IMAGE_FIELD`); a name
        that is absolute or leaves the image root is refused before
        anything is opened."""
        prefix = self.data_prefix.get('img_path', '') or ''
        return resolve_path(prefix, file_name, field or self.IMAGE_FIELD)

    def image_size(self, path: str, height: Any = None, width: Any = None,
                   field: Optional[str] = None) -> Tuple[int, int]:
        """``(height, width)`` from the annotation, else from the image file
        header (PIL reads the header only). Sizes must be positive
        integers (or integer strings, as in MDETR's files)."""
        if height is not None and width is not None:
            try:
                h, w = int(height), int(width)
            except (TypeError, ValueError):
                h = w = 0
            if h <= 0 or w <= 0 or isinstance(height, bool) or \
                    isinstance(width, bool):
                raise RecordError('height/width',
                                  'expected positive integers',
                                  value=[height, width])
            return h, w
        field = field or self.IMAGE_FIELD
        name = osp.basename(str(path))
        if not osp.isfile(path):
            raise RecordError(
                field, f'the annotation has no height/width and the '
                f'image file is missing: {path}', value=name)
        if os.path.getsize(path) == 0:
            raise RecordError(field, f'image file is empty (0 bytes): {path}',
                              value=name)
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(path) as img:
                w, h = img.size
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise RecordError(
                field, f'cannot read the image header ({err})',
                value=name) from None
        return int(h), int(w)

    def make_instance(self, bbox: Any, mask: Any, ann_id: Any,
                      category: str, height: int, width: int,
                      mask_field: str = 'segmentation',
                      bbox_field: str = 'bbox', file: Optional[str] = None,
                      record: Any = None) -> dict:
        """An ``instances`` entry whose xyxy ``bbox`` and ``mask`` (COCO
        polygons / RLE / None) are checked now, errors naming the
        annotation's own key (``mask_field`` / ``bbox_field``) and, when
        the annotation lives in another entry or file, that entry."""
        try:
            if mask is not None:
                check_mask(mask, height, width, self.bounds_tolerance,
                           self.check_mask_area)
            if bbox is not None:
                check_bbox(bbox, height, width, self.bounds_tolerance)
        except RecordError as err:
            field = mask_field if err.field == 'mask' else bbox_field
            raise RecordError(field, err.message, value=err.value, file=file,
                              record=record) from None
        return dict(bbox=bbox, mask=mask, ann_id=ann_id, category=category)

    @staticmethod
    def user(text: str) -> Dict[str, str]:
        return dict(role='user', text=text)

    @staticmethod
    def assistant(text: str) -> Dict[str, str]:
        return dict(role='assistant', text=text)

    @staticmethod
    def choose(rng, options: Sequence[str]) -> str:
        """Pick one of ``options`` with ``rng`` (a template or sentence)."""
        if not options:
            raise ValueError('empty list of options')
        return options[int(rng.randint(len(options)))]
