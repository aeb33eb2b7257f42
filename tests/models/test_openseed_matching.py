"""SegTokenFocalCost and the OpenSeeD assigner on hand-computed costs."""
import itertools
import math

import pytest
import torch
from mmengine.structures import InstanceData

from mmgrounding.models.grounding_heads.openseed_criterion import \
    OPENSEED_ASSIGNER
from mmgrounding.registry import TASK_UTILS


def focal_pos_minus_neg(x, alpha=0.25, gamma=2.0, eps=1e-6):
    """Official matcher's per-column class cost, written out by hand."""
    p = 1.0 / (1.0 + math.exp(-x))
    pos = alpha * (1 - p)**gamma * -math.log(p + eps)
    neg = (1 - alpha) * p**gamma * -math.log(1 - p + eps)
    return pos - neg


# 3 queries x 3 token columns; object 0 <- token {0}, object 1 <- {1, 2}
LOGITS = [[3.0, 2.0, 3.0], [2.8, -3.0, -3.0], [-3.0, 1.0, 1.0]]
TOKEN_SETS = [[0], [1, 2]]


def hand_cost_matrix():
    return [[
        sum(focal_pos_minus_neg(LOGITS[q][n]) for n in tokens) / len(tokens)
        for tokens in TOKEN_SETS
    ] for q in range(3)]


def _instances():
    pred = InstanceData(token_logits=torch.tensor(LOGITS))
    targets = torch.zeros(2, 3, dtype=torch.bool)
    for k, tokens in enumerate(TOKEN_SETS):
        targets[k, tokens] = True
    gt = InstanceData(token_targets=targets, labels=torch.zeros(2).long())
    return pred, gt


def test_seg_token_focal_cost_matches_hand_values():
    cost = TASK_UTILS.build(dict(type='SegTokenFocalCost', weight=4.0))
    pred, gt = _instances()
    got = cost(pred, gt)
    expected = torch.tensor(hand_cost_matrix()) * 4.0
    assert got.shape == (3, 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_empty_token_set_costs_zero():
    cost = TASK_UTILS.build(dict(type='SegTokenFocalCost'))
    pred = InstanceData(token_logits=torch.tensor([[1.0, -2.0]]))
    gt = InstanceData(
        token_targets=torch.tensor([[False, False], [True, False]]),
        labels=torch.zeros(2).long())
    got = cost(pred, gt)
    assert got[0, 0].item() == 0.0
    assert got[0, 1].item() == pytest.approx(focal_pos_minus_neg(1.0))


def test_hungarian_assignment_on_hand_made_costs():
    # Greedy would give query 0 to object 0 (the smallest entry) and query 2
    # to object 1; the optimum pairs query 1 with object 0 and query 0 with
    # object 1.
    costs = hand_cost_matrix()
    best = min(
        itertools.permutations(range(3), 2),
        key=lambda qs: costs[qs[0]][0] + costs[qs[1]][1])
    assert best == (1, 0)
    flat = [(costs[q][k], q, k) for q in range(3) for k in range(2)]
    assert min(flat)[1:] == (0, 0)  # the greedy first pick differs

    assigner = TASK_UTILS.build(
        dict(
            type='mmdet.HungarianAssigner',
            match_costs=[dict(type='mmgrounding.SegTokenFocalCost')]))
    pred, gt = _instances()
    result = assigner.assign(pred, gt, img_meta=dict(img_shape=(1, 1)))
    # gt_inds is 1-based, 0 = unmatched
    assert result.gt_inds.tolist() == [2, 1, 0]


def test_official_assigner_config_builds_with_all_costs():
    assigner = TASK_UTILS.build(OPENSEED_ASSIGNER)
    names = [type(c).__name__ for c in assigner.match_costs]
    assert names == [
        'SegTokenFocalCost', 'CrossEntropyLossCost', 'DiceCost',
        'BBoxL1Cost', 'IoUCost'
    ]
    assert [c.weight for c in assigner.match_costs] == [4., 5., 5., 5., 2.]
    assert assigner.match_costs[2].eps == 1.0
    assert assigner.match_costs[2].pred_act
