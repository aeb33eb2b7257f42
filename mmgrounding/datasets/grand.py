"""GranD (GLaMM's automatically annotated pretraining set), read from its
released per-image annotation JSON."""
import glob
import os.path as osp
import re
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from mmgrounding.registry import DATASETS
from .base_grounding import BaseGroundingDataset, RecordFn
from .gcg import GCG_QUESTION
from .refcoco import ANSWERS
from .utils import (IMAGE_TOKEN, AnnotationFile, RecordError, require_dict,
                    require_text, seeded_rng)

_ASSISTANT_PREFIX = re.compile(r'(?i)\b(?:ass)?istant:?\s*')
#: GranD descriptions carry their own article ("a red car"), unlike RefCOCO.
GRAND_QUESTIONS = (
    'Please segment {expr} in this image.',
    'Can you segment {expr} in this image?',
    'Where is {expr}? Please respond with a segmentation mask.',
)


@DATASETS.register_module()
class GranDPretrainDataset(BaseGroundingDataset):
    """GranD images with grounded captions and referring expressions.

    A GranD annotation file is ``{"sa_X.jpg": {"objects": [...],
    "floating_objects": [...], "short_captions": [{"caption", "details":
    [{"phrase", "tokens_positive": [s, e], "id", "bbox"}]}],
    "dense_caption": {"caption", "details": [{"phrase", "tokens_positive",
    "ids": [...], "bbox": [...]}]}, ...}}`` where objects carry ``id``,
    ``bbox`` (xyxy pixels), ``segmentation`` (RLE), ``labels`` and
    ``attributes``. ``ann_file`` is either a folder of such files (one per
    image, as released) or one JSON merging them
    (``tools/dataset_converters/merge_grand_annotations.py``).

    ``tasks`` selects the records made per image:

    * ``'caption'`` -> task ``'gcg'``: the dense caption (or the first short
      caption when ``caption_source='short'`` or there is no dense one),
      each grounded phrase pointing at its objects' masks.
    * ``'refer'`` -> task ``'refseg'``: up to ``max_refs_per_image`` objects
      with an attribute description (the "Assistant:" prefixes GranD's
      generator left are removed, as GLaMM's preparation script does),
      packed like :class:`RefCOCOGroundingDataset`.
    """

    SOURCE = 'grand'
    SPLITS = ('train', )
    #: the image file name is the record's top-level key
    IMAGE_FIELD = '(image key)'
    TASKS = ('gcg', 'refseg')
    DEFAULT_TASK = 'gcg'

    def __init__(self,
                 *args,
                 tasks: Sequence[str] = ('caption', 'refer'),
                 caption_source: str = 'dense',
                 max_refs_per_image: int = 3,
                 **kwargs) -> None:
        unknown = set(tasks) - {'caption', 'refer'}
        if unknown or not tasks:
            raise ValueError(f'GranDPretrainDataset: unknown tasks '
                             f'{sorted(unknown)}; use "caption", "refer"')
        if caption_source not in ('dense', 'short'):
            raise ValueError(f'caption_source must be "dense" or "short", '
                             f'got {caption_source!r}')
        self.tasks = tuple(tasks)
        self.caption_source = caption_source
        self.max_refs_per_image = max_refs_per_image
        super().__init__(*args, **kwargs)

    def _files(self) -> List[str]:
        if osp.isdir(self.ann_file):
            files = sorted(glob.glob(osp.join(self.ann_file, '*.json')))
            if not files:
                raise ValueError(f'no *.json in {self.ann_file}')
            return files
        return [self.ann_file]

    def load_records(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        first_file = {}
        for file in self._files():
            ann = AnnotationFile(file, dict, 'an object mapping image file '
                                 'names to their annotations')
            for image_name, content in ann.data.items():
                img_id = osp.splitext(image_name)[0]
                if image_name in first_file:
                    yield file, image_name, self._raiser(RecordError(
                        '(image key)', 'image annotated twice (also in '
                        f'{osp.basename(first_file[image_name])})',
                        value=image_name))
                    continue
                first_file[image_name] = file
                yield file, image_name, (
                    lambda n=image_name, c=content, i=img_id, a=ann:
                    self._parse(a, n, c, i))

    @staticmethod
    def _raiser(err: RecordError) -> RecordFn:

        def fn():
            raise err

        return fn

    # ------------------------------------------------------------------
    def _parse(self, ann: AnnotationFile, image_name: str, content: Any,
               img_id: str) -> list:
        content = require_dict(content, image_name)
        ann.check_keys(content)
        path = self.img_path(image_name, '(image key)')
        objects = {}
        for key in ('objects', 'floating_objects'):
            objs = content.get(key) or []
            if not isinstance(objs, list):
                raise RecordError(key, 'expected a list of objects',
                                  value=objs)
            for k, obj in enumerate(objs):
                obj = require_dict(obj, f'{key}[{k}]')
                if 'id' not in obj:
                    raise RecordError(f'{key}[{k}].id', 'missing')
                if obj['id'] in objects:
                    raise RecordError(
                        f'{key}[{k}].id', 'object id repeated in the image '
                        '(objects and floating_objects share one id space)',
                        value=obj['id'])
                objects[obj['id']] = (f'{key}[{k}]', obj)
        size = next((o['segmentation'].get('size')
                     for _, o in objects.values()
                     if isinstance(o.get('segmentation'), dict)), None)
        if not isinstance(size, (list, tuple)) or len(size) != 2:
            size = None
        height, width = self.image_size(path, size and size[0],
                                        size and size[1], '(image key)')
        base = dict(img_path=path, img_id=img_id, height=height, width=width)
        records = []
        if 'caption' in self.tasks:
            rec = self._caption(content, objects, img_id, height, width)
            if rec is not None:
                records.append(dict(base, **rec))
        if 'refer' in self.tasks:
            rec = self._refer(objects, img_id, height, width)
            if rec is not None:
                records.append(dict(base, **rec))
        return records

    def _object(self, objects: dict, obj_id: Any, height: int,
                width: int) -> dict:
        field, obj = objects[obj_id]
        labels = obj.get('labels') or ['object']
        if not isinstance(labels, list):
            labels = [labels]
        bbox = obj.get('bbox')
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise RecordError(f'{field}.bbox', 'expected [x1, y1, x2, y2]',
                              value=bbox)
        return self.make_instance(
            [float(v) for v in bbox], obj.get('segmentation'), obj['id'],
            str(labels[0]).replace('_', ' '), height, width,
            mask_field=f'{field}.segmentation', bbox_field=f'{field}.bbox')

    def _caption(self, content: dict, objects: dict, img_id: str,
                 height: int, width: int) -> Optional[dict]:
        key = 'dense_caption'
        source = content.get(key)
        if self.caption_source == 'short' or not source:
            key = 'short_captions'
            shorts = content.get(key) or []
            if not isinstance(shorts, list):
                raise RecordError(key, 'expected a list', value=shorts)
            source = shorts[0] if shorts else None
            key = f'{key}[0]'
        if not source:
            return None
        source = require_dict(source, key)
        caption = require_text(source.get('caption'), f'{key}.caption')
        instances, index, phrases = [], {}, []
        details = source.get('details') or []
        if not isinstance(details, list):
            raise RecordError(f'{key}.details', 'expected a list',
                              value=details)
        for k, detail in enumerate(details):
            field = f'{key}.details[{k}]'
            detail = require_dict(detail, field)
            ids = detail.get('ids')
            if ids is None:
                ids = [detail['id']] if 'id' in detail else []
            if not isinstance(ids, list):
                raise RecordError(f'{field}.ids', 'expected a list of '
                                  'object ids', value=ids)
            pos = detail.get('tokens_positive')
            if not isinstance(pos, (list, tuple)) or len(pos) != 2 or \
                    not all(isinstance(v, int) for v in pos):
                raise RecordError(f'{field}.tokens_positive',
                                  'expected [start, end]', value=pos)
            start, end = pos
            if not 0 <= start < end <= len(caption):
                raise RecordError(
                    f'{field}.tokens_positive', 'span outside the caption '
                    f'of length {len(caption)}', value=list(pos))
            iids = []
            for obj_id in ids:
                if obj_id not in objects:
                    raise RecordError(f'{field}.ids', 'unknown object id',
                                      value=obj_id)
                if obj_id not in index:
                    index[obj_id] = len(instances)
                    instances.append(
                        self._object(objects, obj_id, height, width))
                iids.append(index[obj_id])
            phrases.append(
                dict(turn=1, start=start, end=end, text=caption[start:end],
                     instance_ids=iids))
        phrases.sort(key=lambda p: (p['start'], p['end']))
        return dict(
            task='gcg',
            conversations=[
                self.user(f'{IMAGE_TOKEN}\n{GCG_QUESTION}'),
                self.assistant(caption)
            ],
            phrases=phrases,
            instances=instances,
            gt_captions=[caption])

    @staticmethod
    def _attribute(obj: dict) -> Optional[str]:
        attrs = obj.get('attributes')
        if isinstance(attrs, str):
            attrs = [attrs]
        for attr in attrs or []:
            attr = ' '.join(_ASSISTANT_PREFIX.sub('', attr).split())
            if attr:
                return attr.rstrip('.')
        return None

    def _refer(self, objects: dict, img_id: str, height: int,
               width: int) -> Optional[dict]:
        described = [(obj_id, self._attribute(obj))
                     for obj_id, (_, obj) in objects.items()]
        described = [(o, a) for o, a in described if a]
        if not described:
            return None
        rng = seeded_rng(self.seed, 'grand', img_id)
        num = min(len(described), self.max_refs_per_image)
        picked = sorted(rng.choice(len(described), num, replace=False))
        conversations, phrases, instances = [], [], []
        for i, idx in enumerate(picked):
            obj_id, expr = described[idx]
            question = self.choose(rng, GRAND_QUESTIONS).format(expr=expr)
            if i == 0:
                question = f'{IMAGE_TOKEN}\n{question}'
            answer_t = self.choose(rng, ANSWERS)
            start = answer_t.index('{expr}')
            conversations += [
                self.user(question),
                self.assistant(answer_t.format(expr=expr))
            ]
            instances.append(self._object(objects, obj_id, height, width))
            phrases.append(
                dict(turn=len(conversations) - 1, start=start,
                     end=start + len(expr), text=expr, instance_ids=[i]))
        return dict(
            task='refseg',
            conversations=conversations,
            phrases=phrases,
            instances=instances)
