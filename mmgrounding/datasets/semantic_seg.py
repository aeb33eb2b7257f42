"""Semantic segmentation for GLaMM, read through mmsegmentation.

* :class:`SyntheticSemSegDataset`: an mmseg ``BaseSegDataset`` over the
  synthetic world's ``semseg/`` split (``mmgrounding.datasets.synthetic.
  semseg``): label PNGs, classes background + shapes.
* :class:`SemanticSegGroundingDataset`: GLaMM's semantic-segmentation
  training source (the official GCG recipe mixes ADE20K / COCO-Stuff /
  PASCAL-Part / PACO / Mapillary this way, ``Semantic_Segm_ds.py``, 3
  classes per sample) over *any* mmseg dataset: each turn asks to segment
  a class present in the image, the answer grounds the class name, and its
  target is the union mask of that class (one ``[SEG]`` per class). In
  ``test_mode`` one sample per (image, present class), the open-vocabulary
  evaluation protocol of :class:`~mmgrounding.evaluation.metrics.
  OpenVocabSemSegMetric` (classes are named from the GT: presence oracle).
"""
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from mmseg.datasets import BaseSegDataset
from PIL import Image

from mmgrounding.registry import DATASETS
from .base_grounding import BaseGroundingDataset, RecordFn
from .refcoco import ANSWERS, REFSEG_QUESTIONS
from .synthetic.scene import encode_rle
from .synthetic.semseg import SEMSEG_CLASSES, SEMSEG_PALETTE
from .utils import IMAGE_TOKEN, RecordError, mask_to_bbox, seeded_rng


@DATASETS.register_module()
class SyntheticSemSegDataset(BaseSegDataset):
    """mmseg dataset of the synthetic world's semantic split.

    ``data_root='data/synthetic/'``, ``ann_file='semseg/val.txt'``,
    ``data_prefix=dict(img_path='images/',
    seg_map_path='semseg/labels/')``; label 0 is background (a class,
    ``reduce_zero_label=False``).
    """
    METAINFO = dict(classes=SEMSEG_CLASSES, palette=SEMSEG_PALETTE)

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix,
                         seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)


def load_label_map(path: str,
                   label_map: Optional[Dict[int, int]] = None,
                   reduce_zero_label: bool = False,
                   ignore_index: int = 255) -> np.ndarray:
    """uint8 [H, W] label map as mmseg's ``LoadAnnotations`` reads it
    (``label_map`` old -> new ids, then the zero-label reduction)."""
    seg = np.array(Image.open(path))
    if label_map:
        out = seg.copy()
        for old, new in label_map.items():
            out[seg == old] = new
        seg = out
    if reduce_zero_label:
        seg = seg.astype(np.int64)
        seg[seg == 0] = ignore_index + 1
        seg = seg - 1
        seg[seg == ignore_index] = ignore_index
        seg = seg.astype(np.uint8)
    return seg


@DATASETS.register_module()
class SemanticSegGroundingDataset(BaseGroundingDataset):
    """GLaMM's semantic-segmentation source over an mmseg dataset.

    Args:
        seg_dataset (dict): config of any mmseg dataset (``BaseSegDataset``
            subclass; built here with an empty pipeline, only its
            ``data_list`` and ``metainfo`` are read).
        max_classes (int): classes per training sample (official: 3); the
            present classes of an image are shuffled (seeded) and cut into
            groups of this size, so every class is asked once per epoch.
        ignore_classes (Sequence[str]): never asked (``'background'``).
        ignore_index (int): label of unlabelled pixels (mmseg's 255).
        question_templates / answer_templates: ``{expr}`` = class name
            (default: the RefSeg questions and answers of GLaMM).
        **kwargs: :class:`BaseGroundingDataset` arguments.

    Records carry ``gt_seg_map_path``, ``label_map`` and
    ``reduce_zero_label`` (the metric reads the GT label map with them)
    and, in ``test_mode``, ``semseg_label`` (the class asked about).
    """
    SOURCE = 'semseg'
    DEFAULT_TASK = 'refseg'
    TASKS = ('refseg', )

    def __init__(self,
                 seg_dataset: dict,
                 max_classes: int = 3,
                 ignore_classes: Sequence[str] = ('background', ),
                 ignore_index: int = 255,
                 question_templates: Optional[Sequence[str]] = None,
                 answer_templates: Optional[Sequence[str]] = None,
                 **kwargs) -> None:
        if max_classes < 1:
            raise ValueError(f'max_classes must be >= 1, got {max_classes}')
        seg_cfg = dict(seg_dataset, pipeline=[], lazy_init=False)
        self.seg_dataset = DATASETS.build(seg_cfg)
        if not isinstance(self.seg_dataset, BaseSegDataset):
            raise TypeError('seg_dataset must build an mmseg BaseSegDataset, '
                            f'got {type(self.seg_dataset).__name__}')
        classes = tuple(self.seg_dataset.metainfo['classes'])
        unknown = [c for c in ignore_classes if c not in classes]
        if unknown:
            raise ValueError(f'ignore_classes {unknown} not in {classes}')
        self.max_classes = max_classes
        self.ignore_labels = {classes.index(c) for c in ignore_classes}
        self.ignore_index = ignore_index
        self.questions = tuple(question_templates or REFSEG_QUESTIONS)
        self.answers = tuple(answer_templates or ANSWERS)
        metainfo = dict(self.seg_dataset.metainfo)
        metainfo.update(kwargs.pop('metainfo', None) or {})
        kwargs.setdefault('ann_file', self.seg_dataset.ann_file)
        super().__init__(metainfo=metainfo, **kwargs)

    def load_records(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        ann_file = self.seg_dataset.ann_file
        for k in range(len(self.seg_dataset)):
            info = self.seg_dataset.get_data_info(k)
            yield ann_file, info['img_path'], (
                lambda i=info: self._records(i))

    def _records(self, info: dict) -> List[dict]:
        path = info.get('seg_map_path')
        if not path:
            raise RecordError('seg_map_path', 'no label map (mmseg '
                              "data_prefix['seg_map_path'])")
        try:
            seg = load_label_map(path, info.get('label_map'),
                                 info.get('reduce_zero_label', False),
                                 self.ignore_index)
        except OSError as err:
            raise RecordError('seg_map_path', f'unreadable: {err}',
                              value=path) from None
        height, width = seg.shape
        classes = self.metainfo['classes']
        labels = [int(v) for v in np.unique(seg)
                  if v != self.ignore_index and v not in self.ignore_labels]
        bad = [v for v in labels if v >= len(classes)]
        if bad:
            raise RecordError('seg_map_path', f'labels {bad} >= '
                              f'{len(classes)} classes', value=path)
        img_id = info['img_path'].rsplit('/', 1)[-1].rsplit('.', 1)[0]
        base = dict(img_path=info['img_path'], img_id=img_id, height=height,
                    width=width, gt_seg_map_path=path,
                    label_map=info.get('label_map'),
                    reduce_zero_label=info.get('reduce_zero_label', False))
        if not labels:
            return []
        if self.test_mode:
            groups = [[v] for v in labels]
        else:
            perm = seeded_rng(self.seed, 'semseg', img_id).permutation(
                len(labels))
            shuffled = [labels[k] for k in perm]
            groups = [shuffled[k:k + self.max_classes]
                      for k in range(0, len(shuffled), self.max_classes)]
        records = []
        for g, group in enumerate(groups):
            rng = seeded_rng(self.seed, 'semseg', img_id, g)
            conversations, phrases, instances = [], [], []
            for label in group:
                name = classes[label]
                question = self.choose(rng, self.questions).format(expr=name)
                if not conversations:
                    question = f'{IMAGE_TOKEN}\n{question}'
                answer_t = self.choose(rng, self.answers)
                start = answer_t.index('{expr}')
                conversations += [self.user(question),
                                  self.assistant(answer_t.format(expr=name))]
                rle = encode_rle(seg == label)
                phrases.append(dict(turn=len(conversations) - 1,
                                    start=start, end=start + len(name),
                                    text=name,
                                    instance_ids=[len(instances)]))
                instances.append(self.make_instance(
                    mask_to_bbox(rle, height, width), rle,
                    f'{img_id}:{label}', name, height, width,
                    mask_field='seg_map_path'))
            record = dict(base, conversations=conversations, phrases=phrases,
                          instances=instances)
            if self.test_mode:
                record['semseg_label'] = group[0]
            records.append(record)
        return records
