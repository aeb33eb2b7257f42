"""LLaVA-Grounding grounded visual chat (GVC) and its visual-prompt variant
(GVC-R): conversation JSON + COCO instances."""
import os.path as osp
from typing import Any, Dict, Iterable, List, Optional, Tuple

import mmengine

from mmgrounding.registry import DATASETS
from mmgrounding.structures.markup import MarkupError, parse_markup
from .base_grounding import BaseGroundingDataset, RecordFn
from .utils import (IMAGE_TOKEN, RecordError, index_coco,
                    move_image_token_first, seeded_rng, xywh_to_xyxy)

ROLES = {'human': 'user', 'gpt': 'assistant'}
OBJ_TOKEN = '<obj>'


@DATASETS.register_module()
class GVCDataset(BaseGroundingDataset):
    """LLaVA-G grounded visual chat (``grounded_visual_chat_data.json``,
    ``llava_instruct_150k_visual_prompt.json``,
    ``grounding_train2017_instruct.json``).

    Each JSON entry ``{"id", "conversations": [{"from", "value"}], "gd_ls",
    "q_gd_ls"}`` is one record:

    * answers carry ``<g_s> phrase <g_e> <seg>``; the markup is removed and
      every ``<seg>`` becomes a phrase (char span of the clean text).
      ``gd_ls[k]`` lists the COCO annotation ids of the k-th ``<seg>`` of the
      whole conversation (``null`` = ungrounded: ``instance_ids=[]``). A
      ``<seg>`` count different from ``len(gd_ls)`` or an unknown annotation
      id is an error. Task ``'gvc'``.
    * questions carrying ``<obj>`` (GVC-R) use ``q_gd_ls``: flattened, the
      k-th id is the referent of the k-th ``<obj>``, stored in ``regions``
      (the placeholder stays in the text; ``record['region_token']`` names
      it). Count mismatches are errors (the official mapper silently pads
      or truncates). Task ``'gvc_r'``.
    * a ``gpt`` value that is a list (RefCOCO-style instruct file) is a set
      of candidate answers; one is drawn with the seeded generator.

    ``<image>`` is moved to the front of its turn (LLaVA convention) or
    prepended to the first question when absent.

    Args:
        instances_file (str): COCO instances JSON holding the annotations
            referenced by ``gd_ls``/``q_gd_ls`` (e.g.
            ``instances_train2017_gvc.json``), relative to ``data_root``.
        max_convs_per_image (int, optional): RefCOCO-style packing: the
            entries of one image are shuffled (seeded) and concatenated by
            groups of at most this many into one record each, as LLaVA-G's
            ``coco_interactive_refcoco`` mapper does per iteration (it draws
            1..max at random each time). ``None`` (default) keeps one record
            per entry.
        ungrounded (str): What to do with a ``<seg>`` whose ``gd_ls`` entry
            is ``null`` (or with every ``<seg>`` of an entry without
            ``gd_ls``): ``'drop'`` (default) keeps the phrase as plain text
            with no grounding token, since the grounding transforms need a
            target per token; ``'keep'`` keeps it as a phrase with
            ``instance_ids=[]`` (LLaVA-G trains the token without a mask
            loss there).
    """

    SOURCE = 'gvc'
    TASKS = ('gvc', 'gvc_r')
    DEFAULT_TASK = 'gvc'

    def __init__(self,
                 *args,
                 instances_file: str = '',
                 max_convs_per_image: Optional[int] = None,
                 ungrounded: str = 'drop',
                 **kwargs) -> None:
        if ungrounded not in ('drop', 'keep'):
            raise ValueError('ungrounded must be "drop" or "keep", got '
                             f'{ungrounded!r}')
        self.ungrounded = ungrounded
        self.instances_file = instances_file
        self.max_convs_per_image = max_convs_per_image
        super().__init__(*args, **kwargs)

    def _join_prefix(self):
        super()._join_prefix()
        if self.instances_file and not mmengine.is_abs(self.instances_file) \
                and self.data_root:
            self.instances_file = osp.join(self.data_root,
                                           self.instances_file)

    # ------------------------------------------------------------------
    def load_records(self) -> Iterable[Tuple[Any, RecordFn]]:
        entries = mmengine.load(self.ann_file, file_format='json')
        if not self.instances_file:
            raise ValueError(f'{type(self).__name__} needs instances_file '
                             '(the COCO annotations gd_ls points at)')
        coco = mmengine.load(self.instances_file, file_format='json')
        images_list, anns = index_coco(coco)
        images = {img['id']: img for img in images_list}
        categories = {c['id']: c['name'] for c in coco.get('categories', [])}
        groups: Dict[Any, List[dict]] = {}
        order: List[Any] = []
        for i, entry in enumerate(entries):
            key = self._image_id(entry)
            if self.max_convs_per_image is None:
                key = (i, key)
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(entry)
        for key in order:
            group = groups[key]
            img_id = self._image_id(group[0])
            for chunk in self._chunks(group, img_id):
                yield img_id, (lambda chunk=chunk, img_id=img_id: [
                    self._parse(chunk, img_id, images, anns, categories)
                ])

    def _chunks(self, group: List[dict], img_id: Any) -> List[List[dict]]:
        """Split an image's entries into records of at most
        ``max_convs_per_image`` (a seeded permutation, so that every entry
        is used once)."""
        size = self.max_convs_per_image
        if size is None or len(group) <= size:
            return [group]
        perm = seeded_rng(self.seed, 'gvc', img_id).permutation(len(group))
        return [[group[i] for i in sorted(perm[k:k + size])]
                for k in range(0, len(group), size)]

    @staticmethod
    def _image_id(entry: dict) -> Any:
        raw = entry.get('id')
        try:
            return int(raw)
        except (TypeError, ValueError):
            return raw

    # ------------------------------------------------------------------
    def _parse(self, group: List[dict], img_id: Any, images: dict,
               anns: dict, categories: dict) -> dict:
        # seeded by the image and the entries' grounding lists (stable
        # across runs and workers): picks among candidate answers
        rng = seeded_rng(self.seed, 'gvc', img_id,
                         [(e.get('gd_ls'), e.get('q_gd_ls')) for e in group])
        image = images.get(img_id)
        if image is None:
            file_name = group[0].get('image')
            if file_name is None:
                raise RecordError(
                    'id', f'image {img_id!r} not in {self.instances_file}')
            image = dict(file_name=file_name)
        path = self.img_path(image['file_name'])
        height, width = self.image_size(path, image.get('height'),
                                        image.get('width'))
        turns: List[dict] = []
        seg_ids: List[Optional[list]] = []
        obj_ids: List[Optional[list]] = []
        any_gd = False
        for entry in group:
            raw = entry.get('conversations')
            if not isinstance(raw, list) or not raw:
                raise RecordError('conversations', 'missing or empty')
            if raw[0].get('from') != 'human':
                raw = raw[1:]  # LLaVA drops a leading gpt turn
            for turn in raw:
                role = ROLES.get(turn.get('from'))
                if role is None:
                    raise RecordError(
                        'conversations',
                        f'unknown speaker {turn.get("from")!r}')
                value = turn.get('value')
                if isinstance(value, list):
                    value = self.choose(rng, value)
                if not isinstance(value, str):
                    raise RecordError('conversations',
                                      f'value is not text: {value!r}')
                turns.append(dict(role=role, text=value))
            if 'q_gd_ls' in entry:
                obj_ids.extend(entry['q_gd_ls'] or [])
                seg_list = entry.get('gd_ls')
            else:
                seg_list = entry.get('gd_ls')
            num_segs = sum(t['value'].count('<seg>') if isinstance(
                t.get('value'), str) else 0 for t in raw)
            if seg_list is None:
                seg_ids.extend([None] * num_segs)
            else:
                any_gd = True
                if len(seg_list) != num_segs:
                    raise RecordError(
                        'gd_ls', f'{num_segs} <seg> tokens but '
                        f'len(gd_ls)={len(seg_list)}')
                seg_ids.extend(seg_list)
        if not any(IMAGE_TOKEN in t['text'] for t in turns):
            turns[0]['text'] = f'{IMAGE_TOKEN}\n{turns[0]["text"]}'
        ann_index = {ann['id']: ann for ann in anns.get(img_id, [])}
        instances: List[dict] = []
        inst_of: Dict[Any, int] = {}

        def instance(ann_id: Any, field: str) -> int:
            if ann_id not in ann_index:
                raise RecordError(
                    field, f'unknown annotation id {ann_id!r} for image '
                    f'{img_id!r} in {self.instances_file}')
            if ann_id not in inst_of:
                ann = ann_index[ann_id]
                inst_of[ann_id] = len(instances)
                instances.append(
                    dict(
                        bbox=xywh_to_xyxy(ann['bbox']),
                        mask=ann.get('segmentation'),
                        ann_id=ann_id,
                        category=categories.get(
                            ann.get('category_id'), 'object')))
            return inst_of[ann_id]

        conversations, phrases = [], []
        num_seen = 0
        for t, turn in enumerate(turns):
            try:
                text, spans = parse_markup(
                    move_image_token_first(turn['text']), 'llava_g')
            except MarkupError as err:
                raise RecordError(err.field, err.message) from err
            conversations.append(dict(role=turn['role'], text=text))
            for start, end in spans:
                k = num_seen
                num_seen += 1
                ids = seg_ids[k] if k < len(seg_ids) else None
                if ids is None and self.ungrounded == 'drop':
                    continue
                phrases.append(
                    dict(
                        turn=t,
                        start=start,
                        end=end,
                        text=text[start:end],
                        instance_ids=[
                            instance(a, f'gd_ls[{k}]') for a in (ids or [])
                        ]))
        regions = []
        flat = [a for ids in obj_ids if ids is not None for a in ids]
        num_obj = sum(
            c['text'].count(OBJ_TOKEN) for c in conversations
            if c['role'] == 'user')
        if obj_ids or num_obj:
            if num_obj != len(flat):
                raise RecordError(
                    'q_gd_ls', f'{num_obj} {OBJ_TOKEN} placeholders but '
                    f'{len(flat)} annotation ids in q_gd_ls')
            for k, ann_id in enumerate(flat):
                iid = instance(ann_id, f'q_gd_ls[{k}]')
                regions.append(
                    dict(instance_id=iid, bbox=list(instances[iid]['bbox'])))
        record = dict(
            img_path=path,
            img_id=img_id,
            height=height,
            width=width,
            task='gvc_r' if regions else self.task,
            conversations=conversations,
            phrases=phrases,
            regions=regions,
            instances=instances,
            grounded=any_gd)
        if regions:
            record['region_token'] = OBJ_TOKEN
        return record
