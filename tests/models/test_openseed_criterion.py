"""OpenSeeDCriterion against losses written out by hand (2 queries)."""
import math

import pytest
import torch
from mmengine.structures import InstanceData

from mmgrounding.models.grounding_heads.openseed_criterion import \
    OpenSeeDCriterion



@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (two oversubscribe the shared 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The 4 pixel centres of a 2 x 2 map, (x, y) normalised: point_sample on
# them returns the pixel values exactly.
CENTRES = torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75],
                        [0.75, 0.75]])


class FixedPointCriterion(OpenSeeDCriterion):
    """Criterion whose matching and loss points are the 4 pixel centres."""

    def sample_match_points(self, batch_size, device):
        return CENTRES[None].expand(batch_size, -1, -1).to(device)

    def sample_loss_points(self, mask_logits):
        return CENTRES[None].expand(len(mask_logits), -1, -1)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def bce(x, t):
    return -(t * math.log(sigmoid(x)) + (1 - t) * math.log(1 - sigmoid(x)))


def focal(x, t, alpha=0.25, gamma=2.0):
    p = sigmoid(x)
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    return alpha_t * (1 - p_t)**gamma * bce(x, t)


def _case():
    # image 0: 2 real tokens (+1 padded column with a huge logit that must
    # be ignored), one object referred to by both tokens; image 1: no token
    logits = torch.tensor([[[2.0, 1.0, 7.0], [-1.0, 0.5, 7.0]],
                           [[5.0, 5.0, 5.0], [5.0, 5.0, 5.0]]])
    masks = torch.tensor([[[[2.0, -1.0], [0.5, -2.0]],
                           [[-1.0, -1.0], [-1.0, -1.0]]]]).repeat(2, 1, 1, 1)
    boxes = torch.tensor([[[0.3, 0.5, 0.4, 0.8], [0.8, 0.2, 0.2, 0.2]]] * 2)
    prompt_mask = torch.tensor([[True, True, False], [False, False, False]])
    gt_mask = torch.tensor([[1., 1., 0., 0.]] * 4)  # left half of a 4 x 4
    targets = [
        InstanceData(
            masks=gt_mask[None],
            bboxes=torch.tensor([[0.25, 0.5, 0.5, 1.0]]),
            token_targets=torch.tensor([[True, True, False]]),
            labels=torch.zeros(1).long()),
        InstanceData(
            masks=torch.zeros(0, 4, 4),
            bboxes=torch.zeros(0, 4),
            token_targets=torch.zeros(0, 3, dtype=torch.bool),
            labels=torch.zeros(0).long()),
    ]
    pred = dict(logits=logits, masks=masks, boxes=boxes)
    return pred, prompt_mask, targets


def expected_losses():
    # class: focal over 2 queries x 2 real columns of image 0; query 0 is
    # matched (target 1, 1), query 1 is not (0, 0); normaliser
    # N_pad * num_masks / 10 = 3 * 1 / 10.
    fl = focal(2.0, 1) + focal(1.0, 1) + focal(-1.0, 0) + focal(0.5, 0)
    loss_cls = 4.0 * fl / 0.3
    # mask points of query 0: logits 2, -1, 0.5, -2 vs targets 1, 0, 1, 0
    xs, ts = [2.0, -1.0, 0.5, -2.0], [1, 0, 1, 0]
    loss_mask = 5.0 * sum(bce(x, t) for x, t in zip(xs, ts)) / 4
    ps = [sigmoid(x) for x in xs]
    inter = sum(p * t for p, t in zip(ps, ts))
    loss_dice = 5.0 * (1 - (2 * inter + 1) / (sum(ps) + sum(ts) + 1))
    # box of query 0 (0.3, 0.5, 0.4, 0.8) vs (0.25, 0.5, 0.5, 1.0)
    loss_bbox = 5.0 * (0.05 + 0.0 + 0.1 + 0.2)
    # xyxy (0.1, 0.1, 0.5, 0.9) vs (0, 0, 0.5, 1): inter 0.32, union 0.5,
    # enclosing box = the gt box (area 0.5) -> giou = 0.64
    loss_iou = 2.0 * (1 - 0.64)
    return dict(loss_cls=loss_cls, loss_mask=loss_mask, loss_dice=loss_dice,
                loss_bbox=loss_bbox, loss_iou=loss_iou)


def test_criterion_equals_hand_computed_losses():
    criterion = FixedPointCriterion(num_points=4, match_num_points=4)
    pred, prompt_mask, targets = _case()
    indices = criterion.match(pred, prompt_mask, targets)
    assert indices[0][0].tolist() == [0] and indices[0][1].tolist() == [0]
    assert len(indices[1][0]) == 0
    losses = criterion([('', pred), ('d0.', pred)], prompt_mask, targets)
    expected = expected_losses()
    assert set(losses) == {p + k for p in ('', 'd0.') for k in expected}
    for key, value in expected.items():
        assert losses[key].item() == pytest.approx(value, rel=1e-4), key
        assert losses['d0.' + key].item() == pytest.approx(value, rel=1e-4)


def test_loss_weight_multiplier_scales_every_loss():
    criterion = FixedPointCriterion(
        num_points=4, match_num_points=4, loss_weight_multiplier=0.1)
    pred, prompt_mask, targets = _case()
    losses = criterion([('', pred)], prompt_mask, targets)
    for key, value in expected_losses().items():
        assert losses[key].item() == pytest.approx(0.1 * value, rel=1e-4)


def test_one_object_of_two_tokens_and_one_token_of_two_objects():
    # token 0 -> objects 0 and 1; token 1 -> object 1 only. Object 1's
    # class target is multi-hot over both tokens.
    criterion = FixedPointCriterion(num_points=4, match_num_points=4)
    logits = torch.tensor([[[3.0, -3.0], [3.0, 3.0], [-4.0, -4.0]]])
    masks = torch.zeros(1, 3, 2, 2)
    boxes = torch.tensor([[[0.25, 0.25, 0.2, 0.2], [0.75, 0.75, 0.2, 0.2],
                           [0.5, 0.5, 0.1, 0.1]]])
    targets = [
        InstanceData(
            masks=torch.zeros(2, 4, 4),
            bboxes=torch.tensor([[0.25, 0.25, 0.2, 0.2],
                                 [0.75, 0.75, 0.2, 0.2]]),
            token_targets=torch.tensor([[True, False], [True, True]]),
            labels=torch.zeros(2).long())
    ]
    pred = dict(logits=logits, masks=masks, boxes=boxes)
    indices = criterion.match(pred, torch.ones(1, 2, dtype=torch.bool),
                              targets)
    assert sorted(zip(indices[0][0].tolist(), indices[0][1].tolist())) == \
        [(0, 0), (1, 1)]
    losses = criterion([('', pred)], torch.ones(1, 2, dtype=torch.bool),
                       targets)
    # targets: q0 (1, 0), q1 (1, 1), q2 (0, 0); N_pad 2, num_masks 2
    fl = (focal(3.0, 1) + focal(-3.0, 0) + focal(3.0, 1) + focal(3.0, 1) +
          focal(-4.0, 0) + focal(-4.0, 0))
    assert losses['loss_cls'].item() == pytest.approx(
        4.0 * fl / (2 * 2 / 10), rel=1e-4)
    assert losses['loss_bbox'].item() == pytest.approx(0.0, abs=1e-6)
