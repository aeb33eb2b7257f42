"""Common base of every mmgrounding dataset loader.

A subclass reads one official annotation format in :meth:`load_records` and
yields ``(record_id, callable)`` pairs; the base class runs each callable,
turns :class:`~mmgrounding.datasets.utils.RecordError` into
:class:`~mmgrounding.structures.errors.GroundingDataError` naming file,
record id and field, checks the result against docs/data_contract.md §1,
and either raises or (``skip_invalid=True``) skips the record with a warning.
"""
import logging
import os.path as osp
from typing import (Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple)

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmgrounding.structures.errors import GroundingDataError
from .utils import RecordError, check_record

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

    Args:
        split (str, optional): Official split name; checked against
            ``SPLITS`` (a dict ``split -> default annotation file`` or a
            tuple of names). An unknown split raises ``ValueError``.
        task (str, optional): Task written in the records (``TASKS`` lists
            the allowed ones; default ``DEFAULT_TASK``).
        skip_invalid (bool): Skip (with a warning) records that violate the
            data contract instead of raising ``GroundingDataError``.
            Defaults to False.
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
    def load_records(self) -> Iterable[Tuple[Any, RecordFn]]:
        """Yield ``(record_id, fn)``; ``fn()`` returns the record(s) parsed
        from one official annotation entry and may raise ``RecordError``."""
        raise NotImplementedError

    # ------------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        """Parse the annotation file(s) into contract records."""
        self.num_skipped = 0
        data_list: List[dict] = []
        for record_id, fn in self.load_records():
            try:
                records = fn()
                for record in records:
                    self._check(record)
            except RecordError as err:
                self._invalid(
                    GroundingDataError(
                        err.message,
                        source=f'{self.SOURCE} {self.ann_file}',
                        img_id=record_id,
                        field=err.field))
                continue
            except GroundingDataError as err:
                self._invalid(err)
                continue
            except (KeyError, TypeError, IndexError, ValueError) as err:
                # malformed official data: say where, not just what
                field = repr(err.args[0]) if isinstance(err, KeyError) \
                    and err.args else 'record'
                self._invalid(
                    GroundingDataError(
                        f'malformed entry ({type(err).__name__}: {err})',
                        source=f'{self.SOURCE} {self.ann_file}',
                        img_id=record_id,
                        field=field))
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

    def _check(self, record: dict) -> None:
        record.setdefault('source', self.SOURCE)
        record.setdefault('task', self.task)
        record.setdefault('phrases', [])
        record.setdefault('regions', [])
        record.setdefault('instances', [])
        if self.check_files and not osp.isfile(record['img_path']):
            raise RecordError('img_path',
                              f'image file not found: {record["img_path"]}')
        check_record(record, tol=self.bounds_tolerance,
                     check_mask_area=self.check_mask_area)

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
    def img_path(self, file_name: str) -> str:
        """Join ``data_prefix['img_path']`` and ``file_name``."""
        prefix = self.data_prefix.get('img_path', '') or ''
        return osp.join(prefix, file_name) if prefix else file_name

    @staticmethod
    def image_size(path: str, height: Any = None,
                   width: Any = None) -> Tuple[int, int]:
        """``(height, width)`` from the annotation, else from the image file
        header (PIL reads the header only)."""
        if height is not None and width is not None:
            try:
                return int(height), int(width)
            except (TypeError, ValueError):
                raise RecordError(
                    'height/width',
                    f'not integers: {height!r}x{width!r}') from None
        if not osp.isfile(path):
            raise RecordError(
                'img_path', f'the annotation has no height/width and the '
                f'image file is missing: {path}')
        from PIL import Image
        with Image.open(path) as img:
            w, h = img.size
        return int(h), int(w)

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
