"""Flickr30kEntitiesDataset on an MDETR ``separateGT`` fixture."""
import json
import os.path as osp

import pytest

from mmgrounding.datasets import Flickr30kEntitiesDataset
from mmgrounding.structures.errors import GroundingDataError

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
IMAGES = osp.join(DATA, 'images')


def build(**kwargs):
    cfg = dict(data_root=osp.join(DATA, 'flickr30k'), split='train',
               data_prefix=dict(img_path=IMAGES))
    cfg.update(kwargs)
    return Flickr30kEntitiesDataset(**cfg)


def test_phrases_boxes_and_metric_fields():
    ds = build()
    assert len(ds) == 2
    rec = ds[0]
    assert rec['task'] == 'phrase_grounding' and rec['img_id'] == 0
    assert (rec['height'], rec['width']) == (32, 32)  # sizes were strings
    caption = rec['conversations'][1]['text']
    assert caption == 'A red square and two shapes on the right.'
    assert [(p['text'], p['instance_ids']) for p in rec['phrases']] == [
        ('A red square', [0]), ('two shapes', [1, 2])]
    assert rec['instances'][2]['bbox'] == [16.0, 2.0, 30.0, 12.0]
    assert rec['phrase_ids'] == [0, 1, 1]
    assert rec['tokens_positive_eval'] == [[[0, 12]], [[17, 27]]]
    assert rec['gt_captions'] == [caption]


def test_bad_span_raises(tmp_path):
    with open(osp.join(DATA, 'flickr30k',
                       'final_flickr_separateGT_train.json')) as f:
        data = json.load(f)
    data['annotations'][0]['tokens_positive'] = [[30, 90]]
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(data))
    with pytest.raises(GroundingDataError) as info:
        build(ann_file=str(path))
    assert info.value.field == 'tokens_positive'
    assert info.value.img_id == 0 and 'bad.json' in str(info.value)
    assert len(build(ann_file=str(path), skip_invalid=True)) == 1


def test_filter_empty(tmp_path):
    with open(osp.join(DATA, 'flickr30k',
                       'final_flickr_separateGT_train.json')) as f:
        data = json.load(f)
    data['annotations'] = [a for a in data['annotations']
                           if a['image_id'] == 0]
    path = tmp_path / 'one.json'
    path.write_text(json.dumps(data))
    assert len(build(ann_file=str(path))) == 2
    assert len(build(ann_file=str(path),
                     filter_cfg=dict(filter_empty=True))) == 1
    assert len(build(ann_file=str(path), test_mode=True,
                     filter_cfg=dict(filter_empty=True))) == 2


def test_missing_key_names_the_field(tmp_path):
    with open(osp.join(DATA, 'flickr30k',
                       'final_flickr_separateGT_train.json')) as f:
        data = json.load(f)
    del data['annotations'][3]['bbox']
    path = tmp_path / 'nobox.json'
    path.write_text(json.dumps(data))
    with pytest.raises(GroundingDataError) as info:
        build(ann_file=str(path))
    # the defect is in annotation 3 (of image 1): both are named
    assert info.value.field == 'bbox' and info.value.record == 3
    assert 'nobox.json' in str(info.value)
    assert 'used by record 1 of nobox.json' in str(info.value)
