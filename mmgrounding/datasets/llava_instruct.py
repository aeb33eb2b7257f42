"""LLaVA-Instruct-150K conversations (no grounding)."""
from typing import Any, Iterable, Tuple

import mmengine

from mmgrounding.registry import DATASETS
from .base_grounding import BaseGroundingDataset, RecordFn
from .utils import IMAGE_TOKEN, RecordError, move_image_token_first

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
    TASKS = ('chat', )
    DEFAULT_TASK = 'chat'

    def load_records(self) -> Iterable[Tuple[Any, RecordFn]]:
        for entry in mmengine.load(self.ann_file, file_format='json'):
            yield entry.get('id'), (lambda e=entry: [self._parse(e)])

    def _parse(self, entry: dict) -> dict:
        if 'image' not in entry:
            raise RecordError('image', 'missing')
        raw = entry.get('conversations')
        if not isinstance(raw, list) or not raw:
            raise RecordError('conversations', 'missing or empty')
        if raw[0].get('from') != 'human':
            raw = raw[1:]
        turns = []
        for i, turn in enumerate(raw):
            role = ROLES.get(turn.get('from'))
            if role is None:
                raise RecordError('conversations',
                                  f'unknown speaker {turn.get("from")!r}')
            expected = 'user' if i % 2 == 0 else 'assistant'
            if role != expected:
                raise RecordError(
                    'conversations', f'turn {i} is {role!r}, expected '
                    f'{expected!r} (turns alternate, human first)')
            turns.append(
                dict(role=role,
                     text=move_image_token_first(str(turn.get('value')))))
        if not turns:
            raise RecordError('conversations', 'no human turn')
        if not any(IMAGE_TOKEN in t['text'] for t in turns):
            turns[0]['text'] = f'{IMAGE_TOKEN}\n{turns[0]["text"]}'
        path = self.img_path(entry['image'])
        height, width = self.image_size(path, entry.get('height'),
                                        entry.get('width'))
        return dict(
            img_path=path,
            img_id=entry.get('id'),
            height=height,
            width=width,
            conversations=turns)
