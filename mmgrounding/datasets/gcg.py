"""GLaMM grounded conversation generation (GCG): GranD-f and its three
repurposed sets, plus the official evaluation ground truth."""
import os.path as osp
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import mmengine

from mmgrounding.registry import DATASETS
from .base_grounding import BaseGroundingDataset, RecordFn
from .utils import (IMAGE_TOKEN, RecordError, default_ann_file, index_coco,
                    locate_phrase, mask_to_bbox, seeded_rng, xywh_to_xyxy)

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
    def load_records(self) -> Iterable[Tuple[Any, RecordFn]]:
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
    def _load_grandf(self) -> Iterable[Tuple[Any, RecordFn]]:
        for entry in mmengine.load(self.ann_file, file_format='json'):
            img_id = entry.get('image_id') or osp.splitext(
                entry.get('file_name', '?'))[0]
            yield img_id, (lambda e=entry, i=img_id: [self._grandf(e, i)])

    def _grandf(self, entry: dict, img_id: Any) -> dict:
        if 'file_name' not in entry:
            raise RecordError('file_name', 'missing')
        caption = str(entry.get('caption', '')).strip('"').strip()
        groundings = entry.get('groundings')
        if not caption or not isinstance(groundings, dict):
            raise RecordError('caption/groundings', 'missing')
        path = self.img_path(entry['file_name'])
        size = None
        for g in groundings.values():
            for rle in g.get('rle_masks') or []:
                size = rle.get('size') if isinstance(rle, dict) else None
                break
            if size:
                break
        height, width = self.image_size(
            path, entry.get('height', size and size[0]),
            entry.get('width', size and size[1]))
        instances, spans = [], []
        for phrase, g in groundings.items():
            pos = g.get('token_positives')
            if not isinstance(pos, (list, tuple)) or len(pos) != 2:
                raise RecordError(
                    f'groundings[{phrase!r}].token_positives',
                    f'expected [start, end], got {pos!r}')
            rles = g.get('rle_masks') or []
            if not rles:
                raise RecordError(f'groundings[{phrase!r}].rle_masks',
                                  'no mask for the phrase')
            ann_ids = g.get('ann_ids')  # not in the release; kept if given
            if not isinstance(ann_ids, list) or len(ann_ids) != len(rles):
                ann_ids = [None] * len(rles)
            ids = []
            for rle, ann_id in zip(rles, ann_ids):
                ids.append(len(instances))
                instances.append(
                    dict(
                        bbox=mask_to_bbox(rle, height, width),
                        mask=rle,
                        ann_id=ann_id,
                        category='object'))
            spans.append((int(pos[0]), int(pos[1]), ids))
        return self._record(img_id, path, height, width, caption, spans,
                            instances)

    _load_psg = _load_grandf

    # -- RefCOCOg-GCG -----------------------------------------------------
    def _load_refcocog(self) -> Iterable[Tuple[Any, RecordFn]]:
        for entry in mmengine.load(self.ann_file, file_format='json'):
            if not isinstance(entry, dict) or len(entry) != 1:
                key, info = None, entry
            else:
                key, info = next(iter(entry.items()))
            yield key, (lambda k=key, i=info: [self._refcocog(k, i)])

    def _refcocog(self, key: Any, info: Any) -> dict:
        if not isinstance(info, dict) or 'img_file_name' not in info:
            raise RecordError('img_file_name', 'missing')
        path = self.img_path(info['img_file_name'])
        height, width = self.image_size(path, info.get('height'),
                                        info.get('width'))
        caption = str(info.get('caption', '')).strip('"').strip().lower()
        found = []
        for k, ref in enumerate(info.get('refs') or []):
            sentence = str(ref.get('sentence', '')).strip()
            pos = caption.find(sentence.lower()) if sentence else -1
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
                raise RecordError(f'refs[{k}].segmentation', 'missing')
            bbox = ref.get('bbox')
            instances.append(
                dict(
                    bbox=xywh_to_xyxy(bbox)
                    if bbox else mask_to_bbox(segm, height, width),
                    mask=segm,
                    ann_id=ref.get('ann_id'),
                    category='object'))
            spans.append((start, end, [len(instances) - 1]))
        img_id = info.get('image_id', key)
        return self._record(img_id, path, height, width, caption, spans,
                            instances)

    # -- Flickr-GCG ---------------------------------------------------------
    def _load_flickr(self) -> Iterable[Tuple[Any, RecordFn]]:
        images, anns = index_coco(
            mmengine.load(self.ann_file, file_format='json'))
        for image in images:
            if len(str(image.get('caption', '')).split(' ')) < \
                    self.min_caption_words:
                continue  # GLaMM drops very short captions
            yield image.get('id'), (lambda im=image: [
                self._flickr(im, anns.get(im.get('id'), []))
            ])

    def _flickr(self, image: dict, anns: List[dict]) -> dict:
        caption = image['caption']
        path = self.img_path(image['file_name'])
        height, width = self.image_size(path, image.get('height'),
                                        image.get('width'))
        instances = []
        by_span: Dict[Tuple[int, int], List[int]] = {}
        for ann in anns:
            x, y, w, h = ann['bbox']
            if ann.get('ignore', False) or ann.get('area', 1) <= 0 \
                    or w < 1 or h < 1:
                continue  # GLaMM drops degenerate boxes
            positives = ann.get('tokens_positive') or []
            if not positives:
                raise RecordError('tokens_positive',
                                  f'annotation {ann.get("id")} has none')
            if 'sam_mask' not in ann:
                raise RecordError('sam_mask',
                                  f'annotation {ann.get("id")} has none')
            instances.append(
                dict(
                    bbox=xywh_to_xyxy(ann['bbox']),
                    mask=ann['sam_mask'],
                    ann_id=ann.get('id'),
                    category='object'))
            span = (int(positives[0][0]), int(positives[0][1]))
            by_span.setdefault(span, []).append(len(instances) - 1)
        spans = [(s, e, ids) for (s, e), ids in by_span.items()]
        return self._record(
            image.get('id'), path, height, width, caption, spans, instances)

    # -- evaluation ground truth ------------------------------------------
    def _load_eval(self) -> Iterable[Tuple[Any, RecordFn]]:
        caps = mmengine.load(self.ann_file, file_format='json')
        masks = mmengine.load(self.mask_file, file_format='json')
        images, cap_anns = index_coco(caps)
        _, mask_anns = index_coco(masks)
        for image in images:
            img_id = image['id']
            yield img_id, (lambda im=image: [
                self._eval(im, cap_anns.get(im['id'], []),
                           mask_anns.get(im['id'], []))
            ])

    def _eval(self, image: dict, caps: List[dict], masks: List[dict]) -> dict:
        if not caps:
            raise RecordError('annotations', 'no caption for the image')
        path = self.img_path(image['file_name'])
        height, width = self.image_size(path, image.get('height'),
                                        image.get('width'))
        caption = caps[0]['caption']
        labels = list(caps[0].get('labels') or [])
        if len(labels) != len(masks):
            raise RecordError(
                'labels', f'{len(labels)} labels but {len(masks)} mask '
                f'annotations in {self.mask_file}')
        instances, spans, cursor = [], [], 0
        for k, (label, ann) in enumerate(zip(labels, masks)):
            segm = ann.get('segmentation')
            if segm is None:
                raise RecordError(f'segmentation (mask annotation '
                                  f'{ann.get("id")})', 'missing')
            bbox = ann.get('bbox')
            instances.append(
                dict(
                    bbox=xywh_to_xyxy(bbox)
                    if bbox else mask_to_bbox(segm, height, width),
                    mask=segm,
                    ann_id=ann.get('id'),
                    category='object'))
            pos = locate_phrase(caption, label, cursor)
            if pos is None:
                raise RecordError(
                    f'labels[{k}]', f'phrase {label!r} not found in the '
                    f'caption {caption!r}')
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
            gt_captions=[c['caption'] for c in caps],
            gt_labels=labels)
