"""GLaMM grounded conversation generation (GCG): GranD-f and its three
repurposed sets, plus the official evaluation ground truth."""
import logging
import os.path as osp
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import mmengine
from mmengine.logging import print_log

from mmgrounding.registry import DATASETS
from .base_grounding import BaseGroundingDataset, RecordFn
from .utils import (IMAGE_TOKEN, AnnotationFile, RecordError,
                    default_ann_file, index_coco, locate_phrase, mask_to_bbox,
                    require_dict, require_text, seeded_rng, xywh_to_xyxy)

#: The instruction of GLaMM's GCG evaluation (eval/gcg/infer.py).
GCG_QUESTION = ('Could you please give me a detailed description of the '
                'image? Please respond with interleaved segmentation masks '
                'for the corresponding parts of the answer.')

#: format -> split -> default annotation file (GranDf/annotations/...).
GCG_FILES = {
    'grandf': {
        'train': 'GranDf_HA_GCG_train.json'
    },
    'psg': {
        'train': 'OpenPsgGCG_train.json',
        'val': 'OpenPsgGCG_val.json'
    },
    'refcocog': {
        'train': 'RefCOCOg_GCG_train.json',
        'val': 'RefCOCOg_GCG_val.json'
    },
    'flickr': {
        'train': 'flickr_mergedGT_GCG_train.json',
        'val': 'flickr_mergedGT_GCG_val.json'
    },
    'eval': {
        'val': 'val_gcg_coco_caption_gt.json',
        'test': 'test_gcg_coco_caption_gt.json'
    },
}


def _first_index(seen: Dict[Any, int], key: Any, k: int) -> int:
    try:
        return seen.setdefault(key, k)
    except TypeError:  # an unhashable id: reported by the record parser
        return k


def _raiser(err: RecordError) -> RecordFn:

    def fn():
        raise err

    return fn


@DATASETS.register_module()
class GCGDataset(BaseGroundingDataset):
    """Grounded captions with one mask set per phrase (task ``'gcg'``).

    One ``format`` per released file shape:

    * ``'grandf'`` / ``'psg'`` (``GranDf_HA_GCG_train.json``,
      ``OpenPsgGCG_*.json``): a list of ``{file_name, caption, groundings:
      {phrase: {token_positives: [s, e], rle_masks: [RLE, ...]}}}``; every
      RLE is an instance of its phrase.
    * ``'refcocog'`` (``RefCOCOg_GCG_*.json``): a list of ``{key:
      {img_file_name, caption, refs: [{sentence, segmentation}]}}``; the
      caption is lower-cased, each sentence found in it is a phrase (others
      are dropped) and overlapping spans are trimmed, as GLaMM does.
    * ``'flickr'`` (``flickr_mergedGT_GCG_*.json``): COCO style, images with
      ``caption``, annotations with ``bbox``, ``tokens_positive`` and
      ``sam_mask``; captions under ``min_caption_words`` words and boxes
      under 1 px are dropped, as GLaMM does.
    * ``'eval'`` (``{split}_gcg_coco_caption_gt.json`` + ``mask_file`` =
      ``{split}_gcg_coco_mask_gt.json``): the evaluator's ground truth. The
      first caption of an image is the reference answer, all captions go to
      ``gt_captions``, its ``labels[i]`` is the phrase of the image's i-th
      mask annotation (located in the caption, case-insensitively, in
      order) and is also kept in ``gt_labels``.

    Phrases are ordered by their start in the caption; the conversation is
    ``<image>`` + the GCG question, answered by the caption.

    Args:
        format (str): One of ``GCG_FILES``.
        split (str): A split of that format (picks the default file).
        mask_file (str, optional): Mask ground truth for ``'eval'``;
            defaults to ``{split}_gcg_coco_mask_gt.json`` next to
            ``ann_file``.
        question_templates (Sequence[str]): User prompts, one drawn per
            record with the seeded generator (default: the evaluation one).
        min_caption_words (int): ``'flickr'`` only.
    """

    SOURCE = 'gcg'
    TASKS = ('gcg', )
    DEFAULT_TASK = 'gcg'

    def __init__(self,
                 *args,
                 format: str = 'grandf',
                 split: str = 'train',
                 mask_file: Optional[str] = None,
                 question_templates: Sequence[str] = (GCG_QUESTION, ),
                 min_caption_words: int = 3,
                 **kwargs) -> None:
        kwargs['ann_file'] = default_ann_file('GCGDataset', GCG_FILES, format,
                                              split, kwargs.get('ann_file'))
        self.format = format
        self.SOURCE = f'gcg_{format}'
        self.SPLITS = tuple(GCG_FILES[format])
        self.IMAGE_FIELD = 'img_file_name' if format == 'refcocog' \
            else 'file_name'
        self.mask_file = mask_file
        self.question_templates = tuple(question_templates)
        self.min_caption_words = min_caption_words
        super().__init__(*args, split=split, **kwargs)

    def _join_prefix(self):
        super()._join_prefix()
        if self.format == 'eval':
            if not self.mask_file:
                self.mask_file = osp.join(
                    osp.dirname(self.ann_file),
                    f'{self.split}_gcg_coco_mask_gt.json')
            elif not mmengine.is_abs(self.mask_file) and self.data_root:
                self.mask_file = osp.join(self.data_root, self.mask_file)

    # ------------------------------------------------------------------
    def load_records(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        return getattr(self, f'_load_{self.format}',
                       self._load_grandf)()

    def _record(self, img_id: Any, path: str, height: int, width: int,
                caption: str, spans: List[Tuple[int, int, List[int]]],
                instances: List[dict], **extra) -> dict:
        rng = seeded_rng(self.seed, 'gcg', img_id)
        question = self.choose(rng, self.question_templates)
        spans = sorted(spans, key=lambda s: (s[0], s[1]))
        phrases = [
            dict(
                turn=1,
                start=s,
                end=e,
                text=caption[s:e],
                instance_ids=list(ids)) for s, e, ids in spans
        ]
        return dict(
            img_path=path,
            img_id=img_id,
            height=height,
            width=width,
            conversations=[
                self.user(f'{IMAGE_TOKEN}\n{question}'),
                self.assistant(caption)
            ],
            phrases=phrases,
            instances=instances,
            gt_captions=extra.pop('gt_captions', [caption]),
            **extra)

    # -- GranDf / OpenPSG ------------------------------------------------
    def _load_grandf(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        ann = AnnotationFile(self.ann_file, list, 'a list of {file_name, '
                             'caption, groundings} objects')
        seen: Dict[Any, int] = {}
        for k, entry in enumerate(ann.data):
            if isinstance(entry, dict):
                record_id = entry.get('image_id', entry.get('file_name'))
            else:
                record_id = None
            if record_id is None:
                record_id = f'[{k}]'
            first = _first_index(seen, record_id, k)
            if first != k:
                yield self.ann_file, record_id, _raiser(RecordError(
                    'image_id' if 'image_id' in entry else 'file_name',
                    f'image repeated ([{first}] and [{k}]); one entry per '
                    'image', value=record_id))
                continue
            yield self.ann_file, record_id, (
                lambda e=entry: [self._grandf(ann, e)])

    def _grandf(self, ann: AnnotationFile, entry: Any) -> dict:
        entry = require_dict(entry, 'record')
        ann.check_keys(entry)
        path = self.img_path(entry.get('file_name'))
        img_id = entry.get('image_id') or osp.splitext(
            osp.basename(entry['file_name']))[0]
        caption = require_text(entry.get('caption'),
                               'caption').strip('"').strip()
        groundings = require_dict(entry.get('groundings'), 'groundings')
        size = None
        for g in groundings.values():
            rles = g.get('rle_masks') if isinstance(g, dict) else None
            if isinstance(rles, list) and rles and isinstance(rles[0], dict):
                size = rles[0].get('size')
                break
        if not isinstance(size, (list, tuple)) or len(size) != 2:
            size = None
        height, width = self.image_size(
            path, entry.get('height', size and size[0]),
            entry.get('width', size and size[1]))
        instances, spans = [], []
        for phrase, g in groundings.items():
            field = f'groundings[{phrase!r}]'
            g = require_dict(g, field)
            pos = g.get('token_positives')
            if not isinstance(pos, (list, tuple)) or len(pos) != 2 or \
                    not all(isinstance(v, int) for v in pos):
                raise RecordError(f'{field}.token_positives',
                                  'expected [start, end]', value=pos)
            start, end = pos
            if not 0 <= start < end <= len(caption):
                raise RecordError(
                    f'{field}.token_positives', f'span outside the caption '
                    f'of length {len(caption)}', value=list(pos))
            if caption[start:end] != phrase:
                raise RecordError(
                    f'{field}.token_positives', f'caption[{start}:{end}] is '
                    f'{caption[start:end]!r}, not the phrase key '
                    f'{phrase!r}', value=list(pos))
            rles = g.get('rle_masks')
            if not isinstance(rles, list) or not rles:
                raise RecordError(f'{field}.rle_masks',
                                  'expected a non-empty list of RLE masks',
                                  value=rles)
            ann_ids = g.get('ann_ids')  # not in the release; kept if given
            if not isinstance(ann_ids, list) or len(ann_ids) != len(rles):
                ann_ids = [None] * len(rles)
            ids = []
            for i, (rle, ann_id) in enumerate(zip(rles, ann_ids)):
                mask_field = f'{field}.rle_masks[{i}]'
                if not isinstance(rle, dict):
                    raise RecordError(mask_field, 'expected an RLE object',
                                      value=rle)
                inst = self.make_instance(None, rle, ann_id, 'object',
                                          height, width,
                                          mask_field=mask_field)
                inst['bbox'] = mask_to_bbox(rle, height, width)
                ids.append(len(instances))
                instances.append(inst)
            spans.append((start, end, ids))
        return self._record(img_id, path, height, width, caption, spans,
                            instances)

    _load_psg = _load_grandf

    # -- RefCOCOg-GCG -----------------------------------------------------
    def _load_refcocog(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        ann = AnnotationFile(self.ann_file, list, 'a list of one-key '
                             '{key: {img_file_name, caption, refs}} objects')
        seen: Dict[Any, int] = {}
        for k, entry in enumerate(ann.data):
            if isinstance(entry, dict) and len(entry) == 1:
                key, info = next(iter(entry.items()))
            else:
                key, info = f'[{k}]', None
            first = _first_index(seen, key, k)
            if first != k:
                yield self.ann_file, key, _raiser(RecordError(
                    key, f'key repeated ([{first}] and [{k}]); one entry per '
                    'key', value=key))
                continue
            yield self.ann_file, key, (
                lambda k=key, i=info, e=entry: [self._refcocog(ann, k, i, e)])

    def _refcocog(self, ann: AnnotationFile, key: Any, info: Any,
                  entry: Any) -> dict:
        if info is None:
            raise RecordError('record', 'expected an object with exactly '
                              'one key', value=entry)
        ann.check_keys(entry, depth=0)
        info = require_dict(info, key)
        ann.check_keys(info)
        path = self.img_path(info.get('img_file_name'))
        height, width = self.image_size(path, info.get('height'),
                                        info.get('width'))
        caption = require_text(info.get('caption'),
                               'caption').strip('"').strip().lower()
        refs = info.get('refs')
        if not isinstance(refs, list):
            raise RecordError('refs', 'expected a list', value=refs)
        found = []
        for k, ref in enumerate(refs):
            ref = require_dict(ref, f'refs[{k}]')
            sentence = require_text(ref.get('sentence'),
                                    f'refs[{k}].sentence').strip()
            pos = caption.find(sentence.lower())
            if pos < 0:
                continue  # GLaMM drops sentences absent from the caption
            found.append((pos, pos + len(sentence), ref, k))
        found.sort(key=lambda f: f[0])
        instances, spans = [], []
        for i, (start, end, ref, k) in enumerate(found):
            if i + 1 < len(found) and end > found[i + 1][0]:
                end = found[i + 1][0]  # trim overlaps, as GLaMM does
            end = start + len(caption[start:end].rstrip())
            if end <= start:
                continue
            segm = ref.get('segmentation')
            if not segm:
                raise RecordError(f'refs[{k}].segmentation', 'missing',
                                  value=segm)
            bbox = ref.get('bbox')
            inst = self.make_instance(
                xywh_to_xyxy(bbox) if bbox else None, segm, ref.get('ann_id'),
                'object', height, width,
                mask_field=f'refs[{k}].segmentation',
                bbox_field=f'refs[{k}].bbox')
            if inst['bbox'] is None:
                inst['bbox'] = mask_to_bbox(segm, height, width)
            instances.append(inst)
            spans.append((start, end, [len(instances) - 1]))
        img_id = info.get('image_id', key)
        return self._record(img_id, path, height, width, caption, spans,
                            instances)

    # -- Flickr-GCG ---------------------------------------------------------
    def _load_flickr(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        ann = AnnotationFile(self.ann_file, dict, 'a COCO-style object with '
                             '"images" and "annotations"')
        images, anns = index_coco(ann.data, self.ann_file)
        short = 0
        for image in images:
            caption = image.get('caption')
            if isinstance(caption, str) and \
                    len(caption.split(' ')) < self.min_caption_words:
                short += 1  # GLaMM drops very short captions
                continue
            yield self.ann_file, image['id'], (lambda im=image: [
                self._flickr(ann, im, anns.get(im['id'], []))
            ])
        if short:
            print_log(
                f'{ann.name}: {short} caption(s) of fewer than '
                f'{self.min_caption_words} words not used (as in GLaMM)',
                logger='current', level=logging.INFO)

    def _flickr(self, ann_file: AnnotationFile, image: dict,
                anns: List[dict]) -> dict:
        ann_file.check_keys(image)
        caption = require_text(image.get('caption'), 'caption')
        path = self.img_path(image.get('file_name'))
        height, width = self.image_size(path, image.get('height'),
                                        image.get('width'))
        instances = []
        by_span: Dict[Tuple[int, int], List[int]] = {}
        for ann in anns:
            ann_file.check_keys(ann)
            where = dict(file=self.ann_file, record=ann['id'])
            box = ann.get('bbox')
            if not isinstance(box, list) or len(box) != 4:
                raise RecordError('bbox', 'expected [x, y, w, h]', value=box,
                                  **where)
            x, y, w, h = box
            if ann.get('ignore', False) or ann.get('area', 1) <= 0 \
                    or w < 1 or h < 1:
                continue  # GLaMM drops degenerate boxes
            positives = ann.get('tokens_positive')
            if not isinstance(positives, list) or not positives or \
                    not isinstance(positives[0], (list, tuple)) or \
                    len(positives[0]) != 2:
                raise RecordError('tokens_positive', 'expected [[start, '
                                  'end], ...]', value=positives, **where)
            if 'sam_mask' not in ann:
                raise RecordError('sam_mask', 'missing', **where)
            instances.append(
                self.make_instance(xywh_to_xyxy(box), ann['sam_mask'],
                                   ann['id'], 'object', height, width,
                                   mask_field='sam_mask', **where))
            span = (int(positives[0][0]), int(positives[0][1]))
            if not 0 <= span[0] < span[1] <= len(caption):
                raise RecordError(
                    'tokens_positive', f'span outside the caption of length '
                    f'{len(caption)}', value=list(span), **where)
            by_span.setdefault(span, []).append(len(instances) - 1)
        spans = [(s, e, ids) for (s, e), ids in by_span.items()]
        return self._record(
            image['id'], path, height, width, caption, spans, instances)

    # -- evaluation ground truth ------------------------------------------
    def _load_eval(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        what = 'a COCO-style object with "images" and "annotations"'
        caps = AnnotationFile(self.ann_file, dict, what)
        masks = AnnotationFile(self.mask_file, dict, what)
        images, cap_anns = index_coco(caps.data, self.ann_file,
                                      need_ann_ids=False)
        _, mask_anns = index_coco(masks.data, self.mask_file)
        for image in images:
            img_id = image['id']
            yield self.ann_file, img_id, (lambda im=image: [
                self._eval(caps, masks, im, cap_anns.get(im['id'], []),
                           mask_anns.get(im['id'], []))
            ])

    def _eval(self, caps_file: AnnotationFile, masks_file: AnnotationFile,
              image: dict, caps: List[dict], masks: List[dict]) -> dict:
        caps_file.check_keys(image)
        if not caps:
            raise RecordError('annotations', 'no caption for the image')
        for cap in caps:
            caps_file.check_keys(cap)
        path = self.img_path(image.get('file_name'))
        height, width = self.image_size(path, image.get('height'),
                                        image.get('width'))
        caption = require_text(caps[0].get('caption'), 'caption')
        labels = caps[0].get('labels')
        if not isinstance(labels, list) or \
                not all(isinstance(v, str) for v in labels):
            raise RecordError('labels', 'expected a list of phrases',
                              value=labels)
        if len(labels) != len(masks):
            raise RecordError(
                'labels', f'{len(labels)} labels but {len(masks)} mask '
                f'annotations in {osp.basename(self.mask_file)}')
        instances, spans, cursor = [], [], 0
        for k, (label, ann) in enumerate(zip(labels, masks)):
            masks_file.check_keys(ann)
            where = dict(file=self.mask_file, record=ann['id'])
            segm = ann.get('segmentation')
            if segm is None:
                raise RecordError('segmentation', 'missing', **where)
            bbox = ann.get('bbox')
            inst = self.make_instance(
                xywh_to_xyxy(bbox) if bbox else None, segm, ann['id'],
                'object', height, width, **where)
            if inst['bbox'] is None:
                inst['bbox'] = mask_to_bbox(segm, height, width)
            instances.append(inst)
            pos = locate_phrase(caption, label, cursor)
            if pos is None:
                raise RecordError(
                    f'labels[{k}]', f'phrase {label!r} not found in the '
                    f'caption {caption!r}', value=label)
            text = label.strip()
            spans.append((pos, pos + len(text), [k]))
            cursor = pos + len(text)
        return self._record(
            image['id'],
            path,
            height,
            width,
            caption,
            spans,
            instances,
            gt_captions=[require_text(c.get('caption'), 'caption')
                         for c in caps],
            gt_labels=labels)
