"""LLaVA-Instruct-150K conversations (no grounding)."""
from typing import Any, Iterable, Tuple

from mmgrounding.registry import DATASETS
from .base_grounding import BaseGroundingDataset, RecordFn
from .utils import (IMAGE_TOKEN, AnnotationFile, RecordError,
                    check_image_token, move_image_token_first, require_dict)

ROLES = {'human': 'user', 'gpt': 'assistant'}


@DATASETS.register_module()
class LLaVAInstructDataset(BaseGroundingDataset):
    """Visual chat from ``llava_instruct_150k.json`` (task ``'chat'``).

    Each entry ``{"id", "image", "conversations": [{"from": "human" |
    "gpt", "value"}]}`` is one record: a leading ``gpt`` turn is dropped,
    roles must alternate, ``<image>`` is moved to the front of its turn
    (prepended to the first question when absent). The image size is read
    from the file header when the entry has none.
    """

    SOURCE = 'llava_instruct'
    SPLITS = ('train', )
    IMAGE_FIELD = 'image'
    TASKS = ('chat', )
    DEFAULT_TASK = 'chat'

    def load_records(self) -> Iterable[Tuple[str, Any, RecordFn]]:
        ann = AnnotationFile(self.ann_file, list, 'a list of {id, image, '
                             'conversations} objects')
        for k, entry in enumerate(ann.data):
            record_id = entry.get('id', f'[{k}]') \
                if isinstance(entry, dict) else f'[{k}]'
            yield self.ann_file, record_id, (
                lambda e=entry: [self._parse(ann, e)])

    def _parse(self, ann: AnnotationFile, entry: Any) -> dict:
        entry = require_dict(entry, 'record')
        ann.check_keys(entry)
        if 'id' not in entry:
            raise RecordError('id', 'missing')
        path = self.img_path(entry.get('image'))
        raw = entry.get('conversations')
        if not isinstance(raw, list) or not raw:
            raise RecordError('conversations', 'expected a non-empty list',
                              value=raw)
        offset = 0
        if isinstance(raw[0], dict) and raw[0].get('from') == 'gpt':
            offset = 1  # LLaVA drops a leading gpt turn
        turns = []
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
                    f'{expected} turn is due (turns alternate, human first)',
                    value=turn.get('from'))
            value = turn.get('value')
            if not isinstance(value, str):
                raise RecordError(f'conversations[{i}].value',
                                  'expected text', value=value)
            turns.append(dict(role=role, text=value))
        if not turns:
            raise RecordError('conversations', 'no human turn')
        try:
            check_image_token(turns)
        except RecordError as err:
            k = int(err.field[len('conversations['):-1]) + offset
            raise RecordError(f'conversations[{k}].value', err.message,
                              value=err.value) from None
        for turn in turns:
            turn['text'] = move_image_token_first(turn['text'])
        if not any(IMAGE_TOKEN in t['text'] for t in turns):
            turns[0]['text'] = f'{IMAGE_TOKEN}\n{turns[0]["text"]}'
        height, width = self.image_size(path, entry.get('height'),
                                        entry.get('width'))
        return dict(
            img_path=path,
            img_id=entry['id'],
            height=height,
            width=width,
            conversations=turns)
