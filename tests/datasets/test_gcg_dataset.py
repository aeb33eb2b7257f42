"""GCGDataset: GranDf, RefCOCOg-GCG, Flickr-GCG and the evaluator GT."""
import json
import os.path as osp

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mmgrounding.datasets import GCGDataset
from mmgrounding.structures.errors import GroundingDataError

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
IMAGES = osp.join(DATA, 'images')


def build(**kwargs):
    cfg = dict(data_root=osp.join(DATA, 'gcg'),
               data_prefix=dict(img_path=IMAGES))
    cfg.update(kwargs)
    return GCGDataset(**cfg)


def spans(rec):
    text = rec['conversations'][1]['text']
    return [(text[p['start']:p['end']], p['instance_ids'])
            for p in rec['phrases']]


def test_grandf_phrases_sorted_with_masks():
    ds = build(format='grandf', split='train')
    rec = ds[0]
    assert rec['task'] == 'gcg' and rec['img_id'] == '000000000001'
    assert rec['conversations'][0]['text'].startswith('<image>\nCould you')
    assert spans(rec) == [('A red square', [0]), ('a blue blob', [2]),
                          ('a green triangle', [1])]
    assert rec['instances'][1]['bbox'] == [17.0, 3.0, 29.0, 11.0]
    assert rec['instances'][0]['mask']['size'] == [32, 32]
    # caption quotes stripped as GLaMM does; two masks for one phrase
    assert ds[1]['conversations'][1]['text'] == 'Two squares.'
    assert spans(ds[1]) == [('Two squares', [0, 1])]


def test_refcocog_gcg_lowercases_and_drops_missing_sentences():
    rec = build(format='refcocog', split='train')[0]
    assert rec['conversations'][1]['text'] == \
        'the red square is left of the blue blob.'
    assert spans(rec) == [('the red square', [0]), ('the blue blob', [1])]
    assert rec['img_id'] == '1_0'
    assert (rec['height'], rec['width']) == (32, 32)  # from the image


def test_flickr_gcg_drops_short_captions():
    ds = build(format='flickr', split='train')
    assert len(ds) == 1  # 'Shapes.' has < 3 words
    assert spans(ds[0]) == [('A yellow square', [0]),
                            ('a purple square', [1])]
    assert [i['ann_id'] for i in ds[0]['instances']] == [50, 51]


def test_eval_ground_truth_pairs_labels_with_masks():
    rec = build(format='eval', split='val')[0]
    assert rec['img_id'] == '000000000001'
    assert rec['gt_labels'] == ['A red square', 'a blue blob']
    assert rec['gt_captions'] == ['A red square next to a blue blob.',
                                  'Two shapes: a square and a blob.']
    assert spans(rec) == [('A red square', [0]), ('a blue blob', [1])]
    assert [i['ann_id'] for i in rec['instances']] == [1, 2]


def test_unknown_split_and_format_raise():
    with pytest.raises(ValueError, match='unknown split'):
        build(format='grandf', split='val')
    with pytest.raises(ValueError, match='unknown split'):
        build(format='eval', split='train')
    with pytest.raises(ValueError, match='unknown format'):
        build(format='coco', split='train')


def _grandf(tmp_path, mutate):
    with open(osp.join(DATA, 'gcg', 'GranDf_HA_GCG_train.json')) as f:
        data = json.load(f)
    mutate(data)
    path = tmp_path / 'GranDf_HA_GCG_train.json'
    path.write_text(json.dumps(data))
    return str(path)


def test_empty_mask_raises(tmp_path):
    empty = mask_utils.encode(np.zeros((32, 32), np.uint8, order='F'))
    empty['counts'] = empty['counts'].decode()

    def mutate(data):
        data[0]['groundings']['a blue blob']['rle_masks'] = [empty]

    path = _grandf(tmp_path, mutate)
    with pytest.raises(GroundingDataError) as info:
        build(format='grandf', split='train', ann_file=path)
    err = info.value
    assert err.field == "groundings['a blue blob'].rle_masks[0]"
    assert err.record == '000000000001'
    assert 'empty mask' in str(err)
    assert len(build(format='grandf', split='train', ann_file=path,
                     skip_invalid=True)) == 1


def test_wrong_rle_size_raises(tmp_path):

    def mutate(data):
        data[1]['groundings']['Two squares']['rle_masks'][0]['size'] = \
            [64, 64]

    with pytest.raises(GroundingDataError, match='RLE size'):
        build(format='grandf', split='train', ann_file=_grandf(tmp_path,
                                                               mutate))


def test_out_of_bounds_polygon_raises(tmp_path):
    with open(osp.join(DATA, 'gcg', 'RefCOCOg_GCG_train.json')) as f:
        data = json.load(f)
    data[0]['1_0']['refs'][0]['segmentation'] = [[4.0, 4.0, 60.0, 4.0,
                                                  60.0, 14.0]]
    path = tmp_path / 'refg.json'
    path.write_text(json.dumps(data))
    with pytest.raises(GroundingDataError) as info:
        build(format='refcocog', split='train', ann_file=str(path))
    assert info.value.field == 'refs[0].segmentation'
    assert 'outside' in str(info.value)


def test_label_not_in_caption_raises(tmp_path):
    with open(osp.join(DATA, 'gcg', 'val_gcg_coco_caption_gt.json')) as f:
        caps = json.load(f)
    caps['annotations'][0]['labels'][1] = 'a green triangle'
    path = tmp_path / 'val_gcg_coco_caption_gt.json'
    path.write_text(json.dumps(caps))
    with pytest.raises(GroundingDataError) as info:
        build(format='eval', split='val', ann_file=str(path),
              mask_file=osp.join(DATA, 'gcg', 'val_gcg_coco_mask_gt.json'))
    assert info.value.field == 'labels[1]'
