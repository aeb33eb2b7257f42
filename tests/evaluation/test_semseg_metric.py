"""OpenVocabSemSegMetric: per-class GLaMM masks -> label maps -> mmseg
IoUMetric, on a hand-built 2-image case (values computed by hand)."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmgrounding.registry import METRICS

CLASSES = ('background', 'circle', 'square', 'triangle')


def _png(path, array):
    Image.fromarray(np.array(array, dtype=np.uint8)).save(path)
    return str(path)


def _query(img, gt, label, masks, scores, shape):
    masks = torch.tensor(masks, dtype=torch.bool).reshape(-1, *shape)
    return dict(img_path=img, gt_seg_map_path=gt, semseg_label=label,
                ori_shape=shape, label_map=None, reduce_zero_label=False,
                pred_instances=dict(masks=masks,
                                    scores=torch.tensor(scores)))


@pytest.fixture
def two_images(tmp_path):
    gt_a = _png(tmp_path / 'a.png', [[0, 1, 1], [0, 2, 2]])
    gt_b = _png(tmp_path / 'b.png', [[3, 3], [0, 0]])
    return [
        # circle: 3 px, scored higher than the square's 2 px: (1, 2) is
        # claimed by both and goes to the circle
        _query('a.jpg', gt_a, 1, [[[0, 1, 1], [0, 0, 1]]], [0.9], (2, 3)),
        _query('a.jpg', gt_a, 2, [[[0, 0, 0], [0, 1, 1]]], [0.5], (2, 3)),
        # the triangle query grounds nothing: all background
        _query('b.jpg', gt_b, 3, [], [], (2, 2)),
    ]


def test_iou_metric_values_by_hand(two_images):
    metric = METRICS.build(dict(type='OpenVocabSemSegMetric'))
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, two_images)
    pred_a, _ = metric.label_maps(metric.results)[0]
    assert pred_a.tolist() == [[0, 1, 1], [0, 2, 1]]
    out = metric.compute_metrics(metric.results)
    # intersect / union per class over both images:
    # bg 4/6, circle 2/3, square 1/2, triangle 0/2
    assert out['IoU.background'] == pytest.approx(66.67)
    assert out['IoU.circle'] == pytest.approx(66.67)
    assert out['IoU.square'] == pytest.approx(50.0)
    assert out['IoU.triangle'] == pytest.approx(0.0)
    assert out['mIoU'] == pytest.approx(45.83)
    assert out['aAcc'] == pytest.approx(70.0)  # 7 of 10 px right
    assert out['mAcc'] == pytest.approx(62.5)  # (1 + 1 + .5 + 0) / 4


def test_score_threshold_and_no_background_fill(two_images):
    metric = METRICS.build(dict(type='OpenVocabSemSegMetric',
                                score_thr=0.6, background=None))
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, two_images)
    # the square's mask (0.5) is dropped; unclaimed pixels are ignored
    pred_a, _ = metric.label_maps(metric.results)[0]
    assert pred_a.tolist() == [[255, 1, 1], [255, 255, 1]]
    out = metric.compute_metrics(metric.results)
    # unclaimed pixels predict no class (missed by every GT class):
    # circle 2/3; background 0/4, square 0/2, triangle 0/2; 2 of 10 px
    assert out['IoU.circle'] == pytest.approx(66.67)
    assert out['IoU.background'] == pytest.approx(0.0)
    assert out['mIoU'] == pytest.approx(16.67)
    assert out['aAcc'] == pytest.approx(20.0)


def test_mask_of_another_size_is_an_error(two_images):
    metric = METRICS.build(dict(type='OpenVocabSemSegMetric'))
    bad = dict(two_images[0], ori_shape=(3, 3))
    with pytest.raises(ValueError, match="a.jpg.*ori_shape"):
        metric.process({}, [bad])
