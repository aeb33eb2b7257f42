"""GLaMM mask BCE and DICE via mmdet losses, against the official formulas."""
import math
import os

import pytest
import torch
from torch.nn import functional as F

from mmgrounding.models.losses import (GLAMM_LOSS_DICE, GLAMM_LOSS_MASK,
                                       multi_image_mask_loss)
from mmgrounding.registry import MODELS

os.environ.setdefault('HF_HUB_OFFLINE', '1')
torch.set_num_threads(1)


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def _official_bce(pred, gt):
    """GLaMM: per-mask mean over pixels, summed, / #masks (per image)."""
    loss = F.binary_cross_entropy_with_logits(pred, gt, reduction='none')
    return loss.flatten(1, 2).mean(1).sum() / (len(pred) + 1e-8)


def _official_dice(pred, gt, scale=1000, eps=1e-6):
    """GLaMM: dice on sigmoid with the predictions scaled by 1/1000."""
    p = pred.sigmoid().flatten(1, 2)
    g = gt.flatten(1, 2)
    inter = 2 * (p / scale * g).sum(-1)
    union = (p / scale).sum(-1) + (g / scale).sum(-1)
    return (1 - (inter + eps) / (union + eps)).sum() / (len(pred) + 1e-8)


def _official_batch(fn, preds, gts, weight):
    """GLaMM's batch loop: per image loss * count, / total count."""
    total = sum(len(p) for p in preds)
    return weight * sum(fn(p, g) * len(p) for p, g in zip(preds, gts)) / (
        total + 1e-8)


def test_hand_computed_2x2():
    logits = torch.tensor([[[0., 2.], [-1., 1.]]])
    gt = torch.tensor([[[0., 1.], [0., 1.]]])
    bce = (math.log(2) + math.log(1 + math.exp(-2)) +
           2 * math.log(1 + math.exp(-1))) / 4
    probs = [_sigmoid(v) for v in (0., 2., -1., 1.)]
    inter = probs[1] + probs[3]
    dice = 1 - (2 * inter / 1000 + 1e-6) / (
        (sum(probs) + 2) / 1000 + 1e-6)
    loss_mask = MODELS.build(GLAMM_LOSS_MASK)
    loss_dice = MODELS.build(GLAMM_LOSS_DICE)
    assert float(multi_image_mask_loss(loss_mask, [logits], [gt])) == \
        pytest.approx(2.0 * bce, rel=1e-6)
    assert float(multi_image_mask_loss(loss_dice, [logits], [gt])) == \
        pytest.approx(0.5 * dice, rel=1e-5)
    assert bce == pytest.approx(0.3616497, rel=1e-6)
    assert dice == pytest.approx(1 - 0.0032247 / 0.0043818, rel=1e-4)


def test_matches_official_on_images_of_different_sizes():
    torch.manual_seed(0)
    preds = [torch.randn(2, 7, 5) * 3, torch.randn(0, 4, 4),
             torch.randn(3, 11, 13) * 3]
    gts = [(torch.rand_like(p) > 0.6).float() for p in preds]
    loss_mask = MODELS.build(GLAMM_LOSS_MASK)
    loss_dice = MODELS.build(GLAMM_LOSS_DICE)
    ours_bce = multi_image_mask_loss(loss_mask, preds, gts)
    ours_dice = multi_image_mask_loss(loss_dice, preds, gts)
    keep = [i for i, p in enumerate(preds) if len(p)]
    ref_bce = _official_batch(_official_bce, [preds[i] for i in keep],
                              [gts[i] for i in keep], 2.0)
    ref_dice = _official_batch(_official_dice, [preds[i] for i in keep],
                               [gts[i] for i in keep], 0.5)
    torch.testing.assert_close(ours_bce, ref_bce, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours_dice, ref_dice, rtol=1e-5, atol=1e-7)
    # a plain pixel mean over all masks would weight the big image more
    flat = torch.cat([p.flatten() for p in preds])
    flat_gt = torch.cat([g.flatten() for g in gts])
    plain = 2.0 * F.binary_cross_entropy_with_logits(flat, flat_gt)
    assert not torch.allclose(ours_bce, plain)


def test_empty_batch_is_rejected_by_the_helper():
    loss_mask = MODELS.build(GLAMM_LOSS_MASK)
    with pytest.raises(ValueError, match='at least one mask'):
        multi_image_mask_loss(loss_mask, [torch.zeros(0, 2, 2)],
                              [torch.zeros(0, 2, 2)])
