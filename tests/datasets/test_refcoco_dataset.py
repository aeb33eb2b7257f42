"""RefCOCOGroundingDataset on the refer-toolkit fixture (tests/data)."""
import os.path as osp
import pickle
import shutil
from unittest import mock

import pytest

from mmgrounding.datasets import RefCOCOGroundingDataset
from mmgrounding.structures.errors import GroundingDataError

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
IMAGES = osp.join(DATA, 'images')


def build(**kwargs):
    cfg = dict(
        data_root=DATA,
        ann_file='coco/instances.json',
        split_file='refcoco/refs(unc).p',
        data_prefix=dict(img_path=IMAGES),
        split='train')
    cfg.update(kwargs)
    return RefCOCOGroundingDataset(**cfg)


def test_train_packs_expressions_per_image():
    ds = build()
    # image 1 has 4 expressions over 3 referents: records of 3 and 1
    assert len(ds) == 2
    recs = [ds[0], ds[1]]
    assert sorted(len(r['phrases']) for r in recs) == [1, 3]
    assert sorted(p['text'] for r in recs for p in r['phrases']) == [
        'blue blob', 'green triangle at the top', 'red square',
        'square on the left']
    for rec in recs:
        assert rec['img_id'] == 1 and rec['task'] == 'refseg'
        assert rec['img_path'] == osp.join(IMAGES, '000000000001.png')
        assert (rec['height'], rec['width']) == (32, 32)
        convs = rec['conversations']
        assert [c['role'] for c in convs] == \
            ['user', 'assistant'] * len(rec['phrases'])
        assert convs[0]['text'].startswith('<image>\n')
        assert all('<image>' not in c['text'] for c in convs[1:])
        for k, phrase in enumerate(rec['phrases']):
            assert phrase['turn'] == 2 * k + 1
            turn_text = convs[phrase['turn']]['text']
            assert turn_text[phrase['start']:phrase['end']] == phrase['text']
            assert phrase['text'] in convs[phrase['turn'] - 1]['text']
            inst = rec['instances'][phrase['instance_ids'][0]]
            expected = {'red square': 11, 'square on the left': 11,
                        'blue blob': 12, 'green triangle at the top': 13}
            assert inst['ann_id'] == expected[phrase['text']]
    by_ann = {i['ann_id']: i for r in recs for i in r['instances']}
    assert by_ann[11]['bbox'] == [4.0, 4.0, 14.0, 14.0]
    assert isinstance(by_ann[11]['mask'], list)  # polygons kept
    assert isinstance(by_ann[12]['mask'], dict)  # RLE kept
    # deterministic: same records in a second build
    again = build()
    assert [again[i]['conversations'] for i in range(2)] == \
        [r['conversations'] for r in recs]


def test_max_refs_and_rec_task():
    ds = build(max_refs_per_image=2, task='rec')
    assert len(ds) == 2
    assert [len(ds[i]['phrases']) for i in range(2)] == [2, 2]
    assert ds[0]['task'] == 'rec'
    assert 'segment' not in ds[0]['conversations'][0]['text']
    assert len(build(max_refs_per_image=None)) == 1


def test_one_record_per_expression_for_evaluation():
    ds = build(split='val', one_per_expression=True)
    assert len(ds) == 3
    sents = sorted(ds[i]['phrases'][0]['text'] for i in range(3))
    assert sents == ['bottom right square', 'purple square', 'yellow square']
    assert sorted(ds[i]['sent_id'] for i in range(3)) == [4, 5, 6]
    assert [ds[i]['ann_id'] for i in range(3)] == [21, 22, 22]
    assert all(len(ds[i]['instances']) == 1 for i in range(3))


def test_unknown_split_raises():
    with pytest.raises(ValueError, match='unknown split'):
        build(split='testC')
    with pytest.raises(ValueError, match="'testB' is not in"):
        build(split='testB')


def test_serialize_indices_lazy():
    ds = build(split='val', one_per_expression=True, serialize_data=True,
               indices=[2, 0], lazy_init=True)
    assert not ds._fully_initialized
    ds.full_init()
    assert len(ds) == 2
    assert ds[0]['phrases'][0]['text'] == 'bottom right square'


def _bad_refs(tmp_path):
    root = tmp_path / 'root'
    (root / 'refcoco').mkdir(parents=True)
    shutil.copytree(osp.join(DATA, 'coco'), root / 'coco')
    with open(osp.join(DATA, 'refcoco', 'refs(unc).p'), 'rb') as f:
        refs = pickle.load(f)
    refs[1]['ann_id'] = 999  # image 1, split train
    with open(root / 'refcoco' / 'refs(unc).p', 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    return str(root)


def test_unknown_annotation_id_raises_or_skips(tmp_path):
    root = _bad_refs(tmp_path)
    with pytest.raises(GroundingDataError) as info:
        build(data_root=root)
    err = info.value
    assert err.field == 'ann_id' and err.img_id == 1
    assert 'instances.json' in str(err) and '999' in str(err)
    with mock.patch('mmgrounding.datasets.base_grounding.print_log') as log:
        ds = build(data_root=root, skip_invalid=True)
    # the bad ref is skipped; the image keeps its 3 valid expressions
    assert len(ds) == 1
    assert sorted({i['ann_id'] for i in ds[0]['instances']}) == [11, 13]
    assert any('999' in str(c.args[0]) for c in log.call_args_list)
