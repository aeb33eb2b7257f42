"""Official GCG definitions: greedy mIoU, recall loop, AP50, RLE IoU."""
import math

import numpy as np
import pytest
from eval_test_utils import box_mask

from mmgrounding.evaluation.functional import (coco_mask_ap50, encode_rle,
                                               greedy_miou,
                                               recall_matches_official,
                                               recall_matches_strict,
                                               rle_iou_matrix)


def test_greedy_miou_is_not_optimal():
    iou = np.array([[1 / 3, 1 / 3], [1 / 3, 1 / 11]])
    # argmax picks (0, 0) (row-major tie), leaving 1/11
    assert greedy_miou(iou) == pytest.approx((1 / 3 + 1 / 11) / 2)
    # the optimal assignment (0,1)+(1,0) would give 1/3
    assert greedy_miou(iou) < 1 / 3


def test_greedy_miou_nan_stops_and_zero_rules():
    assert greedy_miou(np.array([[0.8, np.nan]])) == 0.0
    assert greedy_miou(np.zeros((0, 3))) == 0.0
    assert greedy_miou(np.zeros((2, 2))) == 0.0
    # extra predictions / unmatched GT are not penalised
    assert greedy_miou(np.array([[0.6], [0.2], [0.0]])) == pytest.approx(0.6)
    assert greedy_miou(np.array([[0.6, 0.0, 0.0]])) == pytest.approx(0.6)


def test_rle_iou_matches_numpy_and_nan_for_two_empty_masks():
    h, w = 6, 7
    a = box_mask(h, w, 0, 0, 3, 3)
    b = box_mask(h, w, 1, 1, 4, 5)
    empty = np.zeros((h, w), dtype=bool)
    dt = encode_rle(np.stack([a, empty]))
    gt = encode_rle(np.stack([b, empty]))
    ious = rle_iou_matrix(dt, gt)
    assert ious.shape == (2, 2)
    assert ious[0, 0] == np.sum(a & b) / np.sum(a | b)
    assert ious[0, 1] == 0.0 and ious[1, 0] == 0.0
    assert math.isnan(ious[1, 1])
    assert rle_iou_matrix(dt, gt, empty_union=0.0)[1, 1] == 0.0


def test_recall_first_failure_break():
    ious = np.array([[0.9, 0.0], [0.0, 0.8]])
    good = np.ones((2, 2))
    assert recall_matches_official(ious, good) == 2
    # best-IoU pair has dissimilar text: the official loop stops at once,
    # the perfect second pair is never tried
    sims = np.array([[0.1, 0.0], [0.0, 0.9]])
    assert recall_matches_official(ious, sims) == 0
    assert recall_matches_strict(ious, sims) == 1


def test_recall_thresholds_inclusive_and_nan_passes():
    assert recall_matches_official(np.array([[0.5]]), np.array([[0.5]])) == 1
    assert recall_matches_official(
        np.array([[0.4999]]), np.array([[1.0]])) == 0
    # NaN IoU (two empty masks) passes the IoU test in the official loop
    assert recall_matches_official(np.array([[np.nan]]), np.ones((1, 1))) == 1
    assert recall_matches_strict(np.array([[np.nan]]), np.ones((1, 1))) == 0


def test_recall_index_error_on_mask_phrase_mismatch():
    # 2 predicted masks but 1 predicted phrase: the pick (0, 1) is out of
    # the [1, 1] similarity matrix
    ious = np.array([[0.1, 0.9]])
    sims = np.ones((1, 1))
    with pytest.raises(IndexError):
        recall_matches_official(ious, sims)
    assert recall_matches_strict(ious, sims) == 0
    # the IndexError needs IoU >= thr at the picked cell (lazy `or`)
    assert recall_matches_official(np.array([[0.1, 0.3]]), sims) == 0


def _ap(gts, preds, h=8, w=8):
    images = [dict(id=i, height=h, width=w) for i in range(len(gts))]
    return coco_mask_ap50(images, [encode_rle(np.stack(g)) if g else []
                                   for g in gts],
                          [encode_rle(np.stack(p)) if p else []
                           for p in preds])


def test_ap50_cases():
    m1 = box_mask(8, 8, 0, 0, 4, 4)
    m2 = box_mask(8, 8, 4, 4, 8, 8)
    wrong = box_mask(8, 8, 0, 4, 4, 8)
    assert _ap([[m1, m2]], [[m1, m2]]) == pytest.approx(1.0)
    assert _ap([[m1, m2]], [[wrong]]) == pytest.approx(0.0)
    # no prediction anywhere: 0 (the official script crashes)
    assert _ap([[m1]], [[]]) == 0.0
    # one correct + one FP ranked first (all scores 1.0, order decides):
    # precision at recall 1 is 1/2 -> AP = 0.5; FP ranked last -> AP = 1
    assert _ap([[m1]], [[wrong, m1]]) == pytest.approx(0.5)
    assert _ap([[m1]], [[m1, wrong]]) == pytest.approx(1.0)
    # an empty predicted mask is an ordinary false positive
    empty = np.zeros((8, 8), dtype=bool)
    assert _ap([[m1]], [[empty, m1]]) == pytest.approx(0.5)
    # image without predictions: its GT are false negatives
    assert _ap([[m1], [m2]], [[m1], []]) == pytest.approx(0.50495, abs=1e-4)
