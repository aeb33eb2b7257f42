"""GranD (GLaMM's automatically annotated pretraining set), read from its
released per-image annotation JSON."""
import glob
import os.path as osp
import re
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import mmengine

from mmgrounding.registry import DATASETS
from .base_grounding import BaseGroundingDataset, RecordFn
from .gcg import GCG_QUESTION
from .refcoco import ANSWERS
from .utils import IMAGE_TOKEN, RecordError, seeded_rng

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

    def load_records(self) -> Iterable[Tuple[Any, RecordFn]]:
        for file in self._files():
            data = mmengine.load(file, file_format='json')
            for image_name, content in data.items():
                img_id = osp.splitext(image_name)[0]
                yield img_id, (lambda n=image_name, c=content, i=img_id:
                               self._parse(n, c, i))

    # ------------------------------------------------------------------
    def _parse(self, image_name: str, content: dict, img_id: str) -> list:
        objects = {}
        for obj in (content.get('objects') or []) + \
                (content.get('floating_objects') or []):
            objects.setdefault(obj.get('id'), obj)
        size = next((o['segmentation']['size'] for o in objects.values()
                     if isinstance(o.get('segmentation'), dict)), None)
        path = self.img_path(image_name)
        height, width = self.image_size(path, size and size[0],
                                        size and size[1])
        base = dict(img_path=path, img_id=img_id, height=height, width=width)
        records = []
        if 'caption' in self.tasks:
            rec = self._caption(content, objects, img_id)
            if rec is not None:
                records.append(dict(base, **rec))
        if 'refer' in self.tasks:
            rec = self._refer(objects, img_id)
            if rec is not None:
                records.append(dict(base, **rec))
        return records

    @staticmethod
    def _instance(obj: dict) -> dict:
        labels = obj.get('labels') or ['object']
        return dict(
            bbox=[float(v) for v in obj['bbox']],
            mask=obj.get('segmentation'),
            ann_id=obj.get('id'),
            category=str(labels[0]).replace('_', ' '))

    def _caption(self, content: dict, objects: dict,
                 img_id: str) -> Optional[dict]:
        source = content.get('dense_caption')
        if self.caption_source == 'short' or not source:
            shorts = content.get('short_captions') or []
            source = shorts[0] if shorts else None
        if not source or not source.get('caption'):
            return None
        caption = source['caption']
        instances, index, phrases = [], {}, []
        for k, detail in enumerate(source.get('details') or []):
            ids = detail.get('ids')
            if ids is None:
                ids = [detail['id']] if 'id' in detail else []
            pos = detail.get('tokens_positive')
            if not isinstance(pos, (list, tuple)) or len(pos) != 2:
                raise RecordError(f'details[{k}].tokens_positive',
                                  f'expected [start, end], got {pos!r}')
            iids = []
            for obj_id in ids:
                if obj_id not in objects:
                    raise RecordError(f'details[{k}].ids',
                                      f'unknown object id {obj_id!r}')
                if obj_id not in index:
                    index[obj_id] = len(instances)
                    instances.append(self._instance(objects[obj_id]))
                iids.append(index[obj_id])
            start, end = int(pos[0]), int(pos[1])
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

    def _refer(self, objects: dict, img_id: str) -> Optional[dict]:
        described = [(obj, self._attribute(obj)) for obj in objects.values()]
        described = [(o, a) for o, a in described if a]
        if not described:
            return None
        rng = seeded_rng(self.seed, 'grand', img_id)
        num = min(len(described), self.max_refs_per_image)
        picked = sorted(rng.choice(len(described), num, replace=False))
        conversations, phrases, instances = [], [], []
        for i, idx in enumerate(picked):
            obj, expr = described[idx]
            question = self.choose(rng, GRAND_QUESTIONS).format(expr=expr)
            if i == 0:
                question = f'{IMAGE_TOKEN}\n{question}'
            answer_t = self.choose(rng, ANSWERS)
            start = answer_t.index('{expr}')
            conversations += [
                self.user(question),
                self.assistant(answer_t.format(expr=expr))
            ]
            instances.append(self._instance(obj))
            phrases.append(
                dict(turn=len(conversations) - 1, start=start,
                     end=start + len(expr), text=expr, instance_ids=[i]))
        return dict(
            task='refseg',
            conversations=conversations,
            phrases=phrases,
            instances=instances)
