"""Grounding-Bench grounded P/R/F1 (paper example) and chat scores."""
import math

import numpy as np
import pytest
import torch

from mmgrounding.evaluation import BaseJudge, GroundingBenchMetric


class DictJudge(BaseJudge):
    name = 'dict-judge'

    def __init__(self, verdicts, ratings=()):
        self.verdicts = verdicts
        self.ratings = list(ratings)
        self.match_calls = []

    def match_phrases(self, pairs):
        self.match_calls.append(list(pairs))
        return [self.verdicts[p] for p in pairs]

    def rate_answers(self, items):
        return self.ratings[:len(items)]


def boxes(n):
    return np.array([[10 * i, 0, 10 * i + 8, 8] for i in range(n)],
                    dtype=np.float32)


def test_paper_example():
    # 12 GT entities: 1-3 person, 4-5 backpack, 6-7 suitcase, 8 bicycle,
    # 9-12 car (indices 0..11 here)
    labels = ['person'] * 3 + ['backpack'] * 2 + ['suitcase'] * 2 + [
        'bicycle'
    ] + ['car'] * 4
    gt = boxes(12)
    phrases = ['a sleek, black vehicle', 'a trio of individuals',
               'the first person', 'the second', 'the third']
    pred_gt = [8, 0, 1, 2, 0, 1, 2]  # predicted box = that GT box
    phrase_ids = [0, 1, 1, 1, 2, 3, 4]
    sample = dict(
        img_id=1,
        category='detail',
        gt_phrases=labels,
        gt_instances=dict(bboxes=torch.from_numpy(gt)),
        pred_phrases=phrases,
        pred_instances=dict(
            bboxes=torch.from_numpy(gt[pred_gt]),
            phrase_ids=torch.tensor(phrase_ids)),
        pred_caption='The depiction is of a below-ground parking facility.',
        reference_answer='The image is an underground parking area.',
        question='Describe the image in detail.')
    verdicts = {
        ('a sleek, black vehicle', 'car'): False,
        ('a trio of individuals', 'person'): True,
        ('the first person', 'person'): False,
        ('the second', 'person'): True,
        ('the third', 'person'): False,
    }
    judge = DictJudge(verdicts, ratings=[(8.0, 6.0)])
    metric = GroundingBenchMetric(judge=judge)
    metric.process({}, [sample])
    res = metric.compute_metrics(metric.results)
    p, r = 4 / 7, 3 / 12
    assert res['grounded_precision'] == pytest.approx(100 * p)
    assert res['grounded_recall'] == pytest.approx(100 * r)
    assert res['grounded_F1'] == pytest.approx(100 * 2 * p * r / (p + r))
    assert round(res['grounded_F1'] / 100, 2) == 0.35
    assert res['chat_detail'] == pytest.approx(75.0)
    assert res['chat_all'] == pytest.approx(75.0)
    # only IoU-passing pairs are judged, each distinct pair once
    assert len(judge.match_calls) == 1
    assert sorted(judge.match_calls[0]) == sorted(verdicts)


def test_iou_must_exceed_threshold_and_unparsed_ratings():
    gt = np.array([[0, 0, 10, 10]], dtype=np.float32)
    half = np.array([[0, 0, 10, 5]], dtype=np.float32)  # IoU exactly 0.5
    sample = dict(
        img_id=1,
        category='conv',
        gt_phrases=['dog'],
        gt_instances=dict(bboxes=torch.from_numpy(gt)),
        pred_phrases=['dog'],
        pred_instances=dict(bboxes=torch.from_numpy(half)),
        gt_captions=['A dog.'],
        pred_caption='A dog.')
    judge = DictJudge({}, ratings=[(math.nan, math.nan)])
    metric = GroundingBenchMetric(judge=judge, grounding_categories=['conv'])
    metric.process({}, [sample])
    res = metric.compute_metrics(metric.results)
    assert res['grounded_precision'] == 0.0 and res['grounded_F1'] == 0.0
    assert 'chat_all' not in res  # the only rating could not be parsed


def test_mask_iou_and_missing_labels():
    m = np.zeros((1, 6, 6), dtype=bool)
    m[0, :3, :3] = True
    sample = dict(
        img_id=3,
        ori_shape=(6, 6),
        gt_phrases=['cat'],
        gt_instances=dict(masks=torch.from_numpy(m)),
        pred_phrases=['a cat'],
        pred_instances=dict(masks=torch.from_numpy(m)))
    metric = GroundingBenchMetric(
        judge=DictJudge({('a cat', 'cat'): True}), iou_type='mask')
    metric.process({}, [sample])
    res = metric.compute_metrics(metric.results)
    assert res['grounded_recall'] == pytest.approx(100.0)
    sample['gt_phrases'] = []
    with pytest.raises(ValueError, match='img_id=3.*labels'):
        metric.process({}, [sample])
