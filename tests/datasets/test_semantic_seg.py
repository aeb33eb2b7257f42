"""Synthetic semantic split (label PNGs), the mmseg dataset over it and
GLaMM's semantic-segmentation source (phrase = class name)."""
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from mmgrounding.datasets.synthetic import (SEMSEG_CLASSES, generate_world,
                                            semantic_label_map)
from mmgrounding.datasets.synthetic.scene import encode_rle
from mmgrounding.registry import DATASETS
from mmgrounding.structures import GroundingDataError
from mmgrounding.utils import register_all_modules


def _box_mask(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_label_map_paints_visible_masks_in_order():
    anns = [dict(id=1, category_id=2, segmentation=encode_rle(
                 _box_mask(4, 5, 0, 2, 0, 3))),
            # overlaps the square at (1, 2): the later annotation wins
            dict(id=2, category_id=3, segmentation=encode_rle(
                 _box_mask(4, 5, 1, 4, 2, 4)))]
    assert semantic_label_map(anns, 4, 5).tolist() == [
        [2, 2, 2, 0, 0],
        [2, 2, 3, 3, 0],
        [0, 0, 3, 3, 0],
        [0, 0, 3, 3, 0],
    ]
    anns[1]['category_id'] = 9
    with pytest.raises(GroundingDataError) as err:
        semantic_label_map(anns, 4, 5, file='instances.json')
    assert err.value.field == 'category_id' and 'instances.json' in str(
        err.value) and '2' in str(err.value)


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('semseg_world') / 'synthetic'
    generate_world(str(root), num_images=20, seed=3, with_tokenizer=False)
    return root


def test_world_writes_mmseg_split(world):
    info = json.loads((world / 'world.json').read_text())
    coco = json.loads((world / 'annotations/instances.json').read_text())
    for split, (first, last) in info['splits'].items():
        stems = (world / 'semseg' / f'{split}.txt').read_text().split()
        assert stems == [f'{i:012d}' for i in range(first, last + 1)]
    # every object's own pixels carry its category where no later object
    # covers them (visible masks: at most edge pixels are shared)
    img = coco['images'][0]
    label = np.array(Image.open(world / 'semseg/labels' /
                                img['file_name']))
    assert label.shape == (img['height'], img['width'])
    anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
    assert anns
    for a in anns:
        seg = a['segmentation']
        rle = mask_utils.merge(mask_utils.frPyObjects(
            seg, img['height'], img['width'])) if isinstance(seg, list) \
            else dict(seg, counts=seg['counts'].encode())
        m = mask_utils.decode(rle).astype(bool)
        assert (label[m] == a['category_id']).mean() > 0.9
    assert set(np.unique(label)) <= set(range(len(SEMSEG_CLASSES)))


def _seg_cfg(world, split='train'):
    return dict(type='SyntheticSemSegDataset', data_root=str(world),
                ann_file=f'semseg/{split}.txt',
                data_prefix=dict(img_path='images/',
                                 seg_map_path='semseg/labels/'))


def test_mmseg_dataset_and_glamm_source(world):
    register_all_modules()
    from mmseg.datasets import BaseSegDataset
    seg = DATASETS.build(dict(_seg_cfg(world), pipeline=[]))
    assert isinstance(seg, BaseSegDataset)
    assert seg.metainfo['classes'] == SEMSEG_CLASSES
    src = DATASETS.build(dict(type='SemanticSegGroundingDataset',
                              seg_dataset=_seg_cfg(world), max_classes=2,
                              pipeline=[]))
    assert src.metainfo['classes'] == SEMSEG_CLASSES
    asked = {}
    for i in range(len(src)):
        rec = src.get_data_info(i)
        label = np.array(Image.open(rec['gt_seg_map_path']))
        assert len(rec['phrases']) == len(rec['instances']) <= 2
        for ph in rec['phrases']:
            answer = rec['conversations'][ph['turn']]['text']
            assert answer[ph['start']:ph['end']] == ph['text']
            inst = rec['instances'][ph['instance_ids'][0]]
            c = SEMSEG_CLASSES.index(ph['text'])
            assert ph['text'] in rec['conversations'][ph['turn'] - 1][
                'text']
            m = mask_utils.decode(dict(inst['mask'],
                                       counts=inst['mask']['counts'].encode()))
            assert np.array_equal(m.astype(bool), label == c)
            asked.setdefault(rec['img_path'], []).append(c)
    # every non-background class present is asked exactly once per epoch
    for k in range(len(seg)):
        info = seg.get_data_info(k)
        present = sorted(set(np.unique(np.array(Image.open(
            info['seg_map_path'])))) - {0})
        assert sorted(asked.get(info['img_path'], [])) == present
    test = DATASETS.build(dict(type='SemanticSegGroundingDataset',
                               seg_dataset=_seg_cfg(world, 'val'),
                               test_mode=True, pipeline=[]))
    for i in range(len(test)):
        rec = test.get_data_info(i)
        assert len(rec['phrases']) == 1
        assert SEMSEG_CLASSES[rec['semseg_label']] == rec['phrases'][0][
            'text']
    with pytest.raises(ValueError, match='max_classes'):
        DATASETS.build(dict(type='SemanticSegGroundingDataset',
                            seg_dataset=_seg_cfg(world), max_classes=0))
    with pytest.raises(ValueError, match='sky'):
        DATASETS.build(dict(type='SemanticSegGroundingDataset',
                            seg_dataset=_seg_cfg(world),
                            ignore_classes=('sky', )))


def test_semseg_source_through_glamm_markup(world):
    """One bare [SEG] per asked class (GLaMM's "It is [SEG]."), and the
    loaded target masks are the class masks of the label map, in order."""
    register_all_modules()
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from pathlib import Path
    cfg = Config.fromfile(str(
        Path(__file__).resolve().parents[2] / 'configs/glamm/'
        'glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic-semseg.py'))
    src = cfg.train_dataloader.dataset.datasets[2]
    assert src.type == 'SemanticSegGroundingDataset'
    src.seg_dataset.data_root = str(world)
    pipeline = [t for t in src.pipeline
                if t['type'] in ('LoadImageFromFile',
                                 'LoadGroundingAnnotations',
                                 'FormatGroundedConversation')]
    ds = DATASETS.build(dict(src, pipeline=pipeline))
    out = ds[0]
    rec = ds.get_data_info(0)
    label = np.array(Image.open(rec['gt_seg_map_path']))
    assert out['text'].count('[SEG]') == len(rec['phrases']) >= 1
    masks = out['gt_masks'].to_ndarray().astype(bool)
    want = [label == SEMSEG_CLASSES.index(p['text'])
            for p in rec['phrases']]
    assert len(masks) == len(want)
    for got, exp in zip(masks, want):
        assert np.array_equal(got, exp)


def test_training_mix_builds_with_mmdet_concat(world, tmp_path, monkeypatch):
    """The semantic source joins the GLaMM mix (mmdet ConcatDataset)."""
    register_all_modules()
    from mmengine.config import Config
    from pathlib import Path
    cfg = Config.fromfile(str(
        Path(__file__).resolve().parents[2] / 'configs/glamm/'
        'glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic-semseg.py'))
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'synthetic').symlink_to(world)
    monkeypatch.chdir(tmp_path)
    mix = cfg.train_dataloader.dataset
    for d in mix.datasets:
        d.pipeline = []
    ds = DATASETS.build(mix)
    sizes = [len(d) for d in ds.datasets]
    assert type(ds.datasets[2]).__name__ == 'SemanticSegGroundingDataset'
    assert len(ds) == sum(sizes) and sizes[2] > 0
