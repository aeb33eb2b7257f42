"""projects/pseudo_labels: phrase -> category, GCG predictions -> COCO
results / ODVG records (mmdet's CocoMetric / DumpODVGResults / ODVGDataset
on hand-built files), results -> instances, and the configs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from pycocotools import mask as mask_utils

from mmgrounding.registry import METRICS
from mmgrounding.structures import GroundingDataError
from projects.pseudo_labels.pseudo_labels import (GCGDumpODVGResults,
                                                  PseudoLabelCocoMetric,
                                                  grounded_spans,
                                                  phrase_category)
from projects.pseudo_labels.tools.results_to_instances import \
    results_to_instances

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / 'projects' / 'pseudo_labels'
CLASSES = ('circle', 'square', 'triangle')


def test_phrase_category_first_class_word():
    assert phrase_category('An orange circle', CLASSES) == 0
    # the head noun comes first; later class words modify it
    assert phrase_category('the circle left of the square', CLASSES) == 0
    assert phrase_category('the square right of a circle', CLASSES) == 1
    assert phrase_category('two large Triangles', CLASSES) == 2
    # whole words only, and no class word -> no label
    assert phrase_category('a semicircle', CLASSES) is None
    assert phrase_category('an object', CLASSES) is None
    with pytest.raises(ValueError, match='class list'):
        phrase_category('a circle', ())


def _sample(name, text, boxes, scores, masks=None):
    n = len(boxes)
    pred = dict(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(
        n, 4), scores=torch.tensor(scores), labels=torch.arange(n))
    if masks is not None:
        pred['masks'] = masks
    return dict(img_id=name[:-4], img_path=f'data/synthetic/images/{name}',
                ori_shape=(20, 20), pred_text=text, pred_caption='',
                pred_instances=pred)


def test_grounded_spans_pairs_phrases_with_instances():
    s = _sample('a.png', '<p> a red circle </p> [SEG] and <p> a square '
                '</p> [SEG].', [[0, 0, 1, 1]] * 2, [1., 1.])
    assert grounded_spans(s) == ('a red circle and a square.',
                                 [(0, 12), (17, 25)])
    s['pred_text'] = '<p> a red circle [SEG]'  # unclosed: nothing usable
    assert grounded_spans(s) is None
    s['pred_text'] = '<p> a red circle </p> [SEG].'
    with pytest.raises(ValueError, match='1 grounding tokens.*2 predicted'):
        grounded_spans(s)


def _coco(tmp_path):
    """Two 20x20 images: a circle on 1.png, a square on 2.png."""
    coco = dict(
        images=[dict(id=7, file_name='1.png', height=20, width=20),
                dict(id=9, file_name='2.png', height=20, width=20)],
        categories=[dict(id=1, name='circle'), dict(id=2, name='square'),
                    dict(id=3, name='triangle')],
        annotations=[
            dict(id=1, image_id=7, category_id=1, bbox=[2, 2, 6, 6],
                 area=36, iscrowd=0),
            dict(id=2, image_id=9, category_id=2, bbox=[10, 10, 8, 8],
                 area=64, iscrowd=0)
        ])
    path = tmp_path / 'instances.json'
    path.write_text(json.dumps(coco))
    return str(path)


def _gcg_predictions():
    return [
        # right class, exact box; a phrase with no class word (dropped)
        _sample('1.png', '<p> a red circle </p> [SEG] near <p> a thing '
                '</p> [SEG].', [[2, 2, 8, 8], [0, 0, 4, 4]], [0.9, 0.95]),
        # exact box of the square, but the phrase says circle
        _sample('2.png', 'I see <p> a blue circle </p> [SEG].',
                [[10, 10, 18, 18]], [0.8]),
    ]


def test_pseudo_label_coco_metric_hand_computed(tmp_path):
    ann = _coco(tmp_path)
    metric = METRICS.build(
        dict(type='PseudoLabelCocoMetric', classes=CLASSES, ann_file=ann,
             metric='bbox', outfile_prefix=str(tmp_path / 'out' / 'pl')))
    metric.process({}, _gcg_predictions())
    out = metric.compute_metrics(metric.results)
    # circle: 1 GT, detections [TP 0.9, FP 0.8] -> AP 1; square: 1 GT, no
    # detection -> AP 0; triangle: no GT (ignored) -> mAP 0.5
    assert out['bbox_mAP'] == pytest.approx(0.5)
    assert out['num_phrases'] == 3 and out['num_kept'] == 2
    assert out['num_unmapped'] == 1 and out['num_unparsed_answers'] == 0
    written = json.loads((tmp_path / 'out' / 'pl.bbox.json').read_text())
    got = sorted((r['image_id'], r['category_id'], r['bbox'])
                 for r in written)
    # COCO ids by file name, circle -> category id 1, xywh
    assert got == [(7, 1, [2., 2., 6., 6.]), (9, 1, [10., 10., 8., 8.])]


def test_pseudo_label_coco_metric_format_only_and_errors(tmp_path):
    ann = _coco(tmp_path)
    metric = PseudoLabelCocoMetric(
        CLASSES, ann, min_score=0.85, format_only=True, metric='bbox',
        outfile_prefix=str(tmp_path / 'fo'))
    metric.process({}, _gcg_predictions())
    assert metric.compute_metrics(metric.results)['num_low_score'] == 1
    written = json.loads((tmp_path / 'fo.bbox.json').read_text())
    assert [(r['image_id'], r['score']) for r in written] == [
        (7, pytest.approx(0.9))
    ]
    bad = _sample('3.png', '<p> a circle </p> [SEG]', [[0, 0, 1, 1]], [1.])
    with pytest.raises(GroundingDataError) as err:
        metric.process({}, [bad])
    assert 'instances.json' in str(err.value) and err.value.field == \
        'file_name'
    with pytest.raises(GroundingDataError, match='hexagon'):
        PseudoLabelCocoMetric(('circle', 'hexagon'), ann)


def test_odvg_dump_reads_back_with_mmdet_odvg_dataset(tmp_path):
    from mmdet.datasets import ODVGDataset
    out = tmp_path / 'pl.jsonl'
    metric = GCGDumpODVGResults(str(out), img_prefix='data/synthetic/images',
                                score_thr=0.5)
    preds = _gcg_predictions()
    preds[0]['pred_instances']['scores'] = torch.tensor([0.9, 0.3])
    metric.process({}, preds)
    assert metric.compute_metrics(metric.results) == dict(num_records=2,
                                                          num_regions=2)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]['filename'] == '1.png'
    g = records[0]['grounding']
    assert g['caption'] == 'a red circle near a thing.'
    # 'a thing' scored 0.3 < 0.5: its region has no box and is dropped
    assert g['regions'] == [dict(phrase=['a red circle'],
                                 bbox=[[2.0, 2.0, 8.0, 8.0]],
                                 score=[[0.9]], tokens_positive=[[0, 12]])]
    ds = ODVGDataset(data_root=str(tmp_path), ann_file='pl.jsonl',
                     data_prefix=dict(img='images/'), pipeline=[],
                     return_classes=True, lazy_init=False)
    info = ds.get_data_info(1)
    assert info['text'] == 'I see a blue circle.'
    assert [i['bbox'] for i in info['instances']] == [[10., 10., 18., 18.]]
    assert info['phrases'][0]['tokens_positive'] == [[6, 19]]


def test_results_to_instances(tmp_path):
    ann = _coco(tmp_path)
    m = np.zeros((20, 20), dtype=np.uint8, order='F')
    m[3:5, 4:7] = 1  # 2 x 3 = 6 px
    rle = mask_utils.encode(m)
    rle['counts'] = rle['counts'].decode()
    results = [
        dict(image_id=7, category_id=1, bbox=[4., 3., 3., 2.], score=0.9,
             segmentation=rle),
        dict(image_id=9, category_id=2, bbox=[0., 0., 5., 5.], score=0.2),
        dict(image_id=9, category_id=2, bbox=[0., 0., 0.5, 5.], score=0.9),
    ]
    res = tmp_path / 'pl.segm.json'
    res.write_text(json.dumps(results))
    out = tmp_path / 'train_pseudo.json'
    counts = results_to_instances(str(res), ann, str(out), score_thr=0.5)
    assert counts == dict(images=2, kept=1, dropped=2)
    got = json.loads(out.read_text())
    assert [i['id'] for i in got['images']] == [7, 9]
    (a, ) = got['annotations']
    assert (a['image_id'], a['category_id'], a['area']) == (7, 1, 6.0)
    assert a['bbox'] == [4., 3., 3., 2.] and a['iscrowd'] == 0
    results[1]['image_id'] = 8
    res.write_text(json.dumps(results))
    with pytest.raises(GroundingDataError) as err:
        results_to_instances(str(res), ann, str(out))
    assert 'pl.segm.json' in str(err.value)
    assert err.value.field == 'image_id' and "'[1]'" in str(err.value)


def test_configs_inherit_the_detector_and_glamm():
    det = Config.fromfile(
        str(PROJECT / 'configs/rtmdet_tiny-w025_synthetic-pseudo-labels.py'))
    ref = Config.fromfile(str(
        ROOT / 'projects/detect_then_describe/configs/'
        'rtmdet_tiny-w025_synthetic.py'))
    assert det.model == ref.model and det.train_cfg == ref.train_cfg
    assert det.train_dataloader.dataset.ann_file.endswith(
        'work_dirs/pl_glamm/instances_train_pseudo.json')
    # scored on the real val GT
    assert det.val_evaluator == ref.val_evaluator
    assert det.val_dataloader == ref.val_dataloader
    pl = Config.fromfile(str(
        PROJECT / 'configs/glamm-tiny_gcg-pseudo-labels_synthetic-train.py'))
    assert pl.model.type == 'GLaMM'
    assert pl.test_dataloader.dataset.split == 'train'
    assert [m['type'] for m in pl.test_evaluator] == [
        'PseudoLabelCocoMetric', 'GCGDumpODVGResults'
    ]
    assert tuple(pl.test_evaluator[0]['classes']) == tuple(
        ref.metainfo['classes'])
