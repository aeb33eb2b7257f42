"""SegTokenFocalCost and the OpenSeeD assigner on hand-computed costs."""
import itertools
import math

import pytest
import torch
from mmengine.structures import InstanceData

from mmgrounding.models.grounding_heads.openseed_criterion import \
    OPENSEED_ASSIGNER
from mmgrounding.registry import TASK_UTILS


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (two oversubscribe the shared 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
        'BBoxL1Cost', 'IoUCost', 'SameImageCost'
    ]
    assert [c.weight for c in assigner.match_costs] == [4., 5., 5., 5., 2.,
                                                        1e5]
    assert assigner.match_costs[2].eps == 1.0
    assert assigner.match_costs[2].pred_act


def test_batch_assignment_equals_per_image_assignment():
    """One assign call over the batch (SameImageCost) == one per image."""
    from mmgrounding.models.grounding_heads import OpenSeeDCriterion
    torch.manual_seed(0)
    batched = OpenSeeDCriterion(num_points=16, match_num_points=64)
    per_image_cfg = dict(OPENSEED_ASSIGNER)
    per_image_cfg['match_costs'] = OPENSEED_ASSIGNER['match_costs'][:-1]
    per_image = OpenSeeDCriterion(
        assigner=per_image_cfg, num_points=16, match_num_points=64)
    points = torch.rand(4, 64, 2)
    for crit in (batched, per_image):
        crit.sample_match_points = lambda b, d: points
    b, q, n = 4, 6, 3
    pred = dict(logits=torch.randn(b, q, n) * 3,
                masks=torch.randn(b, q, 8, 8) * 3,
                boxes=torch.rand(b, q, 4) * 0.5 + 0.2)
    prompt_mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0], [1, 1, 0]],
                               dtype=torch.bool)
    counts = [3, 1, 0, 2]
    targets = []
    for k, mask in zip(counts, prompt_mask):
        tt = torch.zeros(k, n, dtype=torch.bool)
        for i in range(k):
            tt[i, torch.nonzero(mask).flatten()[i % max(int(mask.sum()), 1)]
               if mask.any() else 0] = bool(mask.any())
        targets.append(
            InstanceData(masks=(torch.rand(k, 16, 16) > 0.5).float(),
                         bboxes=torch.rand(k, 4) * 0.5 + 0.2,
                         token_targets=tt,
                         labels=torch.zeros(k).long()))
    got = batched.match(pred, prompt_mask, targets)
    want = per_image.match(pred, prompt_mask, targets)
    for (gq, gg), (wq, wg), k in zip(got, want, counts):
        assert len(gq) == k
        assert sorted(zip(gq.tolist(), gg.tolist())) == \
            sorted(zip(wq.tolist(), wg.tolist()))
