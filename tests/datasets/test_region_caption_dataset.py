"""RegionCaptionDataset: MDETR RefCOCOg and Visual Genome region captions."""
import os.path as osp

import pytest

from mmgrounding.datasets import RegionCaptionDataset

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
IMAGES = osp.join(DATA, 'images')


def build(**kwargs):
    cfg = dict(data_root=osp.join(DATA, 'region_caption'),
               data_prefix=dict(img_path=IMAGES))
    cfg.update(kwargs)
    return RegionCaptionDataset(**cfg)


def test_mdetr_train_caption_from_image_entry():
    ds = build(format='refcocog', split='train')
    assert len(ds) == 2
    rec = ds[0]
    assert rec['task'] == 'region_caption' and rec['region_token'] == '<bbox>'
    user, answer = rec['conversations']
    assert user['text'].startswith('<image>\n') and user['text'].count(
        '<bbox>') == 1
    assert answer['text'] == 'red square on the left'
    assert rec['regions'] == [dict(instance_id=0, bbox=[4.0, 4.0, 14.0,
                                                        14.0])]
    assert rec['gt_captions'] == ['red square on the left']


def test_eval_one_record_per_region_with_official_prompt():
    ds = build(format='refcocog', split='val', one_per_region=True)
    assert [ds[i]['img_id'] for i in range(2)] == [7, 8]
    assert [ds[i]['region_id'] for i in range(2)] == [7, 8]
    assert ds[0]['conversations'][0]['text'] == (
        '<image>\nCan you provide me with a detailed description of the '
        'region in the picture marked by <bbox>?')
    assert ds[1]['gt_captions'] == ['purple square']


def test_vg_caption_per_annotation_and_max_regions():
    rec = build(format='vg', split='train', max_regions_per_image=2,
                region_token='<obj>')[0]
    assert len(rec['regions']) == 2 and len(rec['conversations']) == 4
    assert sum(c['text'].count('<obj>') for c in rec['conversations']) == 2
    assert set(rec['gt_captions']) <= {'a red square', 'a blue blob',
                                       'a green triangle'}
    assert len(build(format='vg', split='test', one_per_region=True)) == 2


def test_unknown_split_raises():
    with pytest.raises(ValueError, match='unknown split'):
        build(format='vg', split='val')
