"""RefSeg cIoU/gIoU, REC Acc@0.5 and Flickr30K Recall@k on small cases."""
import numpy as np
import pytest
import torch
from eval_test_utils import box_mask
from mmdet.structures.mask import BitmapMasks

from mmgrounding.evaluation import (GroundingFlickr30kMetric, RECAccMetric,
                                    RefSegGIoUMetric, refseg_scores)
from mmgrounding.registry import METRICS


def seg_sample(img_id, gt, pred, h=4, w=4):
    return dict(
        img_id=img_id,
        gt_phrases=[f'p{i}' for i in range(len(gt))],
        gt_instances=dict(
            masks=BitmapMasks(np.stack(gt).astype(np.uint8), h, w)),
        pred_instances=dict(
            masks=torch.from_numpy(np.stack(pred)) if pred else torch.zeros(
                (0, h, w), dtype=torch.bool)))


def test_refseg_hand_computed():
    a = box_mask(4, 4, 0, 0, 2, 2)  # 4 px
    b = box_mask(4, 4, 0, 0, 2, 4)  # 8 px, contains a
    empty = np.zeros((4, 4), dtype=bool)
    metric = METRICS.build(dict(type='RefSegGIoUMetric'))
    assert isinstance(metric, RefSegGIoUMetric)
    metric.process({}, [
        seg_sample(1, [b, empty], [a, empty]),  # I/U 4/8, then U == 0
        seg_sample(2, [a], []),  # missing prediction: I 0, U 4
    ])
    res = metric.compute_metrics(metric.results)
    ious = [4 / (8 + 1e-5), 0 / 1e-5 + 1.0, 0 / (4 + 1e-5)]
    assert res['gIoU'] == pytest.approx(100 * sum(ious) / (3 + 1e-5))
    assert res['cIoU'] == pytest.approx(100 * 4 / (12 + 1e-10))


def test_refseg_union_zero_and_float32():
    # only empty-vs-empty: gIoU ~ 1 (no-object answers), cIoU 0 (0/1e-10)
    out = refseg_scores([0, 0], [0, 0])
    assert out['gIoU'] == pytest.approx(2 / (2 + 1e-5))
    assert out['cIoU'] == 0.0
    f64 = refseg_scores([3, 5, 7], [10, 11, 13])
    f32 = refseg_scores([3, 5, 7], [10, 11, 13], float32=True)
    assert f32['gIoU'] == pytest.approx(f64['gIoU'], abs=1e-6)
    assert f32['cIoU'] == np.float32(15) / (np.float32(34) + np.float32(1e-10))
    with pytest.raises(ValueError, match='iou_metrics'):
        RefSegGIoUMetric(iou_metrics=['mIoU'])


def test_refseg_repeated_samples_count_and_size_error():
    a = box_mask(4, 4, 0, 0, 2, 2)
    metric = RefSegGIoUMetric()
    s = seg_sample(1, [a], [a])
    # mmengine drops distributed padding: what reaches the metric counts
    metric.process({}, [s, s])
    assert metric.compute_metrics(metric.results)['gIoU'] == pytest.approx(
        100 * 2 * (4 / (4 + 1e-5)) / (2 + 1e-5))
    bad = seg_sample(2, [a], [np.zeros((3, 3), dtype=bool)])
    with pytest.raises(ValueError, match='img_id=2.*original image size'):
        metric.process({}, [bad])


def box_sample(img_id, gt, pred, scores=None):
    return dict(
        img_id=img_id,
        gt_instances=dict(bboxes=torch.tensor(gt, dtype=torch.float32)),
        pred_instances=dict(
            bboxes=torch.tensor(pred, dtype=torch.float32).reshape(-1, 4),
            scores=torch.tensor(
                scores if scores is not None else [1.0] * len(pred))))


def test_rec_accuracy():
    metric = RECAccMetric(topk=(1, 2))
    metric.process({}, [
        box_sample(1, [[0, 0, 10, 10]], [[0, 0, 10, 5]]),  # IoU 0.5 passes
        box_sample(2, [[0, 0, 10, 10]], [[0, 0, 10, 4.9]]),  # IoU 0.49
        box_sample(3, [[0, 0, 10, 10], [20, 20, 30, 30]],
                   [[0, 0, 10, 10]]),  # 2nd expression has no prediction
        # ranked list: the hit has the lower score -> rank 1 (top-2 only)
        box_sample(4, [[0, 0, 10, 10]], [[50, 50, 60, 60], [0, 0, 10, 10]],
                   scores=[0.9, 0.1]),
        box_sample(5, [[0, 0, 10, 10]], []),  # no prediction
    ])
    res = metric.compute_metrics(metric.results)
    assert res['Acc@1'] == pytest.approx(100 * 2 / 6)
    assert res['Acc@2'] == pytest.approx(100 * 3 / 6)


def test_flickr30k_recall_at_k():
    metric = METRICS.build(dict(type='GroundingFlickr30kMetric', topk=(1, 2,
                                                                      -1)))
    assert isinstance(metric, GroundingFlickr30kMetric)
    s1 = box_sample(1, [[0, 0, 10, 10], [20, 20, 30, 30], [22, 22, 30, 30]],
                    [[50, 50, 60, 60], [0, 0, 10, 10], [20, 20, 30, 30]],
                    scores=[0.9, 0.5, 0.8])
    s1['phrase_ids'] = [0, 1, 1]
    s1['phrases'] = ['a dog', 'two cats']
    s1['pred_instances']['phrase_ids'] = torch.tensor([0, 0, 1])
    s2 = box_sample(2, [[0, 0, 10, 10]], [])  # phrase with no prediction
    s2['gt_phrases'] = ['a man']
    metric.process({}, [s1, s2])
    res = metric.compute_metrics(metric.results)
    # phrase 0: ranked [box(50..), box(0..)] -> hit at rank 2
    # phrase 1: hit at rank 1; phrase of image 2: miss
    assert res == pytest.approx({'R@1': 100 / 3, 'R@2': 200 / 3,
                                 'R@any': 200 / 3})
    assert metric.merge_boxes(np.array([[0, 0, 1, 1], [2, 2, 3,
                                                       3]])).tolist() == [[
                                                           0, 0, 3, 3
                                                       ]]
