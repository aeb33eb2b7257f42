"""LLaVAInstructDataset: plain visual chat, sizes read from the images."""
import json
import os.path as osp

import pytest

from mmgrounding.datasets import LLaVAInstructDataset
from mmgrounding.structures.errors import GroundingDataError

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
IMAGES = osp.join(DATA, 'images')


def build(**kwargs):
    cfg = dict(data_root=osp.join(DATA, 'llava_instruct'),
               ann_file='llava_instruct_150k.json',
               data_prefix=dict(img_path=IMAGES))
    cfg.update(kwargs)
    return LLaVAInstructDataset(**cfg)


def test_conversations():
    ds = build()
    rec = ds[0]
    assert rec['task'] == 'chat' and rec['phrases'] == []
    assert (rec['height'], rec['width']) == (32, 32)
    assert rec['conversations'][0] == dict(
        role='user', text='<image>\nWhat shapes are there?')
    assert len(rec['conversations']) == 4
    # a leading gpt turn is dropped
    assert ds[1]['conversations'][0]['text'] == '<image>\nHow many squares?'
    # never filtered as "empty"
    assert len(build(filter_cfg=dict(filter_empty=True))) == 2


def test_broken_turn_order_and_missing_file(tmp_path):
    with open(osp.join(DATA, 'llava_instruct',
                       'llava_instruct_150k.json')) as f:
        data = json.load(f)
    data[0]['conversations'][2]['from'] = 'gpt'
    path = tmp_path / 'chat.json'
    path.write_text(json.dumps(data))
    with pytest.raises(GroundingDataError) as info:
        build(ann_file=str(path))
    assert info.value.field == 'conversations[2].from'
    assert info.value.record == '000000000001'

    data = [dict(id='x', image='missing.png', height=32, width=32,
                 conversations=[{'from': 'human', 'value': 'hi'},
                                {'from': 'gpt', 'value': 'hello'}])]
    path.write_text(json.dumps(data))
    assert len(build(ann_file=str(path))) == 1  # no file check by default
    with pytest.raises(GroundingDataError) as info:
        build(ann_file=str(path), check_files=True)
    assert info.value.field == 'image' and 'missing.png' in str(
        info.value)
