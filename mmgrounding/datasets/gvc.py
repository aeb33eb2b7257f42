"""LLaVA-Grounding grounded visual chat (GVC) and its visual-prompt variant
(GVC-R): conversation JSON + COCO instances."""
import os.path as osp
from typing import Any, Dict, Iterable, List, Optional, Tuple

import mmengine

from mmgrounding.registry import DATASETS
from mmgrounding.structures.markup import MarkupError, parse_markup
from .base_grounding import BaseGroundingDataset, RecordFn
from .utils import (IMAGE_TOKEN, AnnotationFile, RecordError,
                    check_image_token, index_coco, move_image_token_first,
                    require_dict, seeded_rng, xywh_to_xyxy)

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
    SPLITS = ('train', )
    IMAGE_FIELD = 'image'
    TASKS = ('gvc', 'gvc_r')
    DEFAULT_TASK = 'gvc'

    def __init__(self,
                 *args,
                 instances_file: str = '',
                 max_convs_per_image: Optional[int] = None,
                 ungrounded: str = 'drop',
                 one_per_question: bool = False,
                 **kwargs) -> None:
        if ungrounded not in ('drop', 'keep'):
            raise ValueError('ungrounded must be "drop" or "keep", got '
                             f'{ungrounded!r}')
        self.ungrounded = ungrounded
        self.instances_file = instances_file
        self.max_convs_per_image = max_convs_per_image
        self.one_per_question = one_per_question
        super().__init__(*args, **kwargs)

    def _join_prefix(self):
        super()._join_prefix()
        if self.instances_file and not mmengine.is_abs(self.instances_file) \
                and self.data_root:
            self.instances_file = osp.join(self.data_root,
                                           self.instances_file)

    # ------------------------------------------------------------------
    def load_records(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        if not self.instances_file:
            raise ValueError(f'{type(self).__name__} needs instances_file '
                             '(the COCO annotations gd_ls points at)')
        ann = AnnotationFile(self.ann_file, list, 'a list of {id, '
                             'conversations, gd_ls} objects')
        coco = AnnotationFile(self.instances_file, dict, 'COCO instances '
                              'with "images" and "annotations"').data
        images_list, anns = index_coco(coco, self.instances_file)
        images = {img['id']: img for img in images_list}
        categories = {
            c['id']: c['name']
            for c in coco.get('categories', [])
            if isinstance(c, dict) and 'id' in c
        }
        groups: Dict[Any, List[dict]] = {}
        order: List[Any] = []
        for i, entry in enumerate(ann.data):
            if not isinstance(entry, dict) or not isinstance(
                    entry.get('id'), (str, int)):
                yield self.ann_file, f'[{i}]', self._raiser(RecordError(
                    'id', 'expected an object with a string or integer '
                    '"id"', value=entry.get('id') if isinstance(
                        entry, dict) else entry))
                continue
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
                yield self.ann_file, chunk[0]['id'], (
                    lambda chunk=chunk, img_id=img_id: self._records(
                        self._parse(ann, chunk, img_id, images, anns,
                                    categories)))

    def _records(self, record: dict) -> List[dict]:
        """``[record]``, or one record per ``<obj>`` question
        (``one_per_question``)."""
        if not self.one_per_question:
            return [record]
        convs = record['conversations']
        out: List[dict] = []
        first_region = 0
        for t in range(0, len(convs), 2):
            text = convs[t]['text']
            count = text.count(OBJ_TOKEN)
            regions = record['regions'][first_region:first_region + count]
            first_region += count
            if not count:
                continue
            if t + 1 >= len(convs):
                raise RecordError(f'conversations[{t}]',
                                  'region question without an answer',
                                  value=text)
            question = text.replace(IMAGE_TOKEN, '').strip()
            out.append(
                dict(
                    record,
                    conversations=[self.user(f'{IMAGE_TOKEN}\n{question}')],
                    phrases=[],
                    regions=[dict(r) for r in regions],
                    instances=[dict(i) for i in record['instances']],
                    region_token=OBJ_TOKEN,
                    task='gvc_r',
                    question=question,
                    question_index=len(out),
                    gt_answer=convs[t + 1]['text'],
                    answer_field=f'conversations[{t + 1}].value'))
        if not out:
            raise RecordError('conversations',
                              f'no question with {OBJ_TOKEN} (the '
                              'region-question view needs one)')
        return out

    @staticmethod
    def _raiser(err: RecordError) -> RecordFn:

        def fn():
            raise err

        return fn

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
    def _turns(self, entry: dict, rng, first: bool) -> List[dict]:
        """The entry's turns as ``{role, text}``: a leading ``gpt`` turn is
        dropped (as LLaVA does), speakers must alternate from ``human``,
        ``<image>`` may only open the first question (it is removed from
        the entries packed after the first one)."""
        raw = entry.get('conversations')
        if not isinstance(raw, list) or not raw:
            raise RecordError('conversations', 'expected a non-empty list',
                              value=raw)
        offset = 0
        if isinstance(raw[0], dict) and raw[0].get('from') == 'gpt':
            offset = 1  # LLaVA drops a leading gpt turn
        turns: List[dict] = []
        for i in range(offset, len(raw)):
            turn = require_dict(raw[i], f'conversations[{i}]')
            role = ROLES.get(turn.get('from'))
            if role is None:
                raise RecordError(f'conversations[{i}].from',
                                  f'unknown speaker; expected one of '
                                  f'{list(ROLES)}', value=turn.get('from'))
            expected = 'user' if len(turns) % 2 == 0 else 'assistant'
            if role != expected:
                raise RecordError(
                    f'conversations[{i}].from', f'{role} turn where a '
                    f'{expected} turn is due (speakers alternate, human '
                    'first)', value=turn.get('from'))
            value = turn.get('value')
            if isinstance(value, list) and role == 'assistant' and value \
                    and all(isinstance(v, str) for v in value):
                value = self.choose(rng, value)
            if not isinstance(value, str):
                raise RecordError(f'conversations[{i}].value',
                                  'expected text', value=value)
            turns.append(dict(role=role, text=value, index=i))
        if not turns:
            raise RecordError('conversations', 'no human turn')
        try:
            check_image_token(turns)
        except RecordError as err:
            k = int(err.field[len('conversations['):-1])
            raise RecordError(
                f'conversations[{turns[k]["index"]}].value', err.message,
                value=err.value) from None
        if not first:
            turns[0]['text'] = turns[0]['text'].replace(IMAGE_TOKEN,
                                                        '').strip()
        return turns

    def _parse(self, ann_file: AnnotationFile, group: List[dict],
               img_id: Any, images: dict, anns: dict,
               categories: dict) -> dict:
        # seeded by the image and the entries' grounding lists (stable
        # across runs and workers): picks among candidate answers
        rng = seeded_rng(self.seed, 'gvc', img_id,
                         [(e.get('gd_ls'), e.get('q_gd_ls')) for e in group])
        image = images.get(img_id)
        if image is None:
            if group[0].get('image') is None:
                raise RecordError(
                    'image', f'missing, and image id {img_id!r} is not in '
                    f'{osp.basename(self.instances_file)}')
            path = self.img_path(group[0].get('image'))
            height, width = self.image_size(path)
        else:
            where = dict(file=self.instances_file, record=image['id'])
            try:
                path = self.img_path(image.get('file_name'), 'file_name')
                height, width = self.image_size(path, image.get('height'),
                                                image.get('width'),
                                                'file_name')
            except RecordError as err:
                raise RecordError(err.field, err.message, err.value,
                                  **where) from None
        turns: List[dict] = []
        seg_ids: List[Optional[list]] = []
        obj_ids: List[Optional[list]] = []
        any_gd = False
        for e, entry in enumerate(group):
            where = dict(record=entry['id']) if e else {}
            try:
                ann_file.check_keys(entry)
                entry_turns = self._turns(entry, rng, first=e == 0)
                num_segs = sum(t['text'].count('<seg>') for t in entry_turns)
                seg_list = self._id_lists(entry, 'gd_ls', num_segs)
                obj_list = self._id_lists(entry, 'q_gd_ls', None)
            except RecordError as err:
                if not where:
                    raise
                raise RecordError(err.field, err.message, err.value,
                                  **where) from None
            turns.extend(entry_turns)
            if obj_list is not None:
                obj_ids.extend(obj_list)
            if seg_list is None:
                seg_ids.extend([None] * num_segs)
            else:
                any_gd = True
                seg_ids.extend(seg_list)
        if not any(IMAGE_TOKEN in t['text'] for t in turns):
            turns[0]['text'] = f'{IMAGE_TOKEN}\n{turns[0]["text"]}'
        ann_index = {ann['id']: ann for ann in anns.get(img_id, [])}
        instances: List[dict] = []
        inst_of: Dict[Any, int] = {}

        def instance(ann_id: Any, field: str) -> int:
            try:
                known = ann_id in ann_index
            except TypeError:
                known = False
            if not known:
                raise RecordError(
                    field, f'unknown annotation id for image {img_id!r} in '
                    f'{osp.basename(self.instances_file)}', value=ann_id)
            if ann_id not in inst_of:
                ann = ann_index[ann_id]
                where = dict(file=self.instances_file, record=ann_id)
                box = ann.get('bbox')
                if not isinstance(box, list) or len(box) != 4:
                    raise RecordError('bbox', 'expected [x, y, w, h]',
                                      value=box, **where)
                inst_of[ann_id] = len(instances)
                instances.append(
                    self.make_instance(
                        xywh_to_xyxy(box), ann.get('segmentation'), ann_id,
                        categories.get(ann.get('category_id'), 'object'),
                        height, width, **where))
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

    @staticmethod
    def _id_lists(entry: dict, key: str,
                  count: Optional[int]) -> Optional[List[Optional[list]]]:
        """``entry[key]`` (``gd_ls`` / ``q_gd_ls``): a list with one entry
        per grounding token (``count``; unchecked when None), each a list
        of annotation ids or null. None when the key is absent or null."""
        value = entry.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(
                v is None or isinstance(v, list) for v in value):
            raise RecordError(key, 'expected a list of annotation-id lists '
                              '(or null)', value=value)
        if count is not None and len(value) != count:
            raise RecordError(
                key, f'{count} <seg> tokens but len({key})={len(value)}',
                value=value)
        return value
