"""GranDPretrainDataset on a per-image GranD annotation file."""
import json
import os.path as osp

import pytest

from mmgrounding.datasets import GranDPretrainDataset
from mmgrounding.structures.errors import GroundingDataError

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
IMAGES = osp.join(DATA, 'images')


def build(**kwargs):
    cfg = dict(data_root=osp.join(DATA, 'grand'), ann_file='annotations',
               data_prefix=dict(img_path=IMAGES))
    cfg.update(kwargs)
    return GranDPretrainDataset(**cfg)


def test_caption_and_refer_records():
    ds = build()
    assert len(ds) == 2
    cap, ref = ds[0], ds[1]
    assert cap['task'] == 'gcg' and ref['task'] == 'refseg'
    text = cap['conversations'][1]['text']
    assert [(text[p['start']:p['end']],
             [cap['instances'][i]['ann_id'] for i in p['instance_ids']])
            for p in cap['phrases']] == [('A red square', [1]),
                                         ('a small blue blob', [2]),
                                         ('a triangle', [3])]
    assert cap['instances'][0]['category'] == 'red square'
    # "Assistant:" / "istant:" prefixes removed from the attributes
    assert [p['text'] for p in ref['phrases']] == [
        'a red square on the left', 'a small blue blob']
    assert all('istant' not in c['text'] for c in ref['conversations'])


def test_short_caption_and_single_task():
    ds = build(tasks=('caption', ), caption_source='short')
    assert len(ds) == 1
    assert ds[0]['conversations'][1]['text'] == 'a red square and a blob'
    with pytest.raises(ValueError, match='unknown tasks'):
        build(tasks=('vqa', ))


def test_unknown_object_id_raises(tmp_path):
    src = osp.join(DATA, 'grand', 'annotations', '000000000001.json')
    with open(src) as f:
        data = json.load(f)
    data['000000000001.png']['dense_caption']['details'][0]['ids'] = [77]
    (tmp_path / 'ann').mkdir()
    (tmp_path / 'ann' / 'a.json').write_text(json.dumps(data))
    with pytest.raises(GroundingDataError) as info:
        build(ann_file=str(tmp_path / 'ann'))
    assert info.value.field == 'dense_caption.details[0].ids' and '77' in str(info.value)
