"""Regression: metrics never merge distinct samples of one image.

RefCOCO repeats sentences: two expressions of one image can have the same
text but different targets, and the official evaluations count each.
Grounding-Bench asks several questions per image; Flickr30K has five
sentences per image. The metrics used to dedupe on ``(img_id, sample_idx,
phrases)`` with ``sample_idx`` never packed, so such samples collapsed into
the first. mmengine's ``collect_results`` strips distributed padding, so no
metric dedupes now. Every expected number below is computed by hand.
"""
import numpy as np
import pytest
import torch
from eval_test_utils import TableEncoder, box_mask
from mmdet.structures.mask import BitmapMasks

from mmgrounding.evaluation import (BaseJudge, GCGMetric,
                                    GroundingBenchMetric,
                                    GroundingFlickr30kMetric, RECAccMetric,
                                    RefSegGIoUMetric, RegionCaptionMetric)

H = W = 4
SQUARE = box_mask(H, W, 0, 0, 2, 2)  # 4 px
OTHER = box_mask(H, W, 2, 0, 4, 4)  # 8 px, disjoint from SQUARE
EMPTY = np.zeros((H, W), dtype=bool)


def refseg_sample(gt, pred):
    # as packed before the fix: no sample_idx; same image, same text
    return dict(
        img_id='000000000001',
        gt_phrases=['the square'],
        gt_instances=dict(masks=BitmapMasks(gt[None].astype(np.uint8), H, W)),
        pred_instances=dict(masks=torch.from_numpy(pred[None])))


def test_refseg_counts_two_expressions_with_identical_text():
    metric = RefSegGIoUMetric()
    metric.process({}, [
        refseg_sample(SQUARE, SQUARE),  # I 4, U 4
        refseg_sample(OTHER, EMPTY),  # I 0, U 8
    ])
    res = metric.compute_metrics(metric.results)
    assert res['cIoU'] == pytest.approx(100 * 4 / (12 + 1e-10))
    assert res['gIoU'] == pytest.approx(100 * (4 / (4 + 1e-5) + 0.0) /
                                        (2 + 1e-5))


def test_rec_counts_two_expressions_with_identical_text():
    def sample(gt, pred):
        return dict(
            img_id='000000000001',
            gt_phrases=['the square'],
            gt_instances=dict(bboxes=torch.tensor([gt], dtype=torch.float32)),
            pred_instances=dict(
                bboxes=torch.tensor([pred], dtype=torch.float32),
                scores=torch.ones(1)))

    metric = RECAccMetric()
    metric.process({}, [
        sample([0, 0, 10, 10], [0, 0, 10, 10]),  # IoU 1: hit
        sample([20, 20, 30, 30], [0, 0, 10, 10]),  # IoU 0: miss
    ])
    assert metric.compute_metrics(metric.results)['Acc@1'] == \
        pytest.approx(50.0)


def test_flickr_counts_every_sentence_of_an_image():
    def sentence(pred):
        return dict(
            img_id=5,
            gt_phrases=['a dog'],
            gt_instances=dict(bboxes=torch.tensor([[0., 0., 10., 10.]])),
            pred_instances=dict(bboxes=torch.tensor([pred]),
                                scores=torch.ones(1)))

    metric = GroundingFlickr30kMetric(topk=(1, ))
    metric.process({}, [sentence([0., 0., 10., 10.]),
                        sentence([50., 50., 60., 60.])])
    assert metric.compute_metrics(metric.results)['R@1'] == \
        pytest.approx(50.0)


class ListJudge(BaseJudge):
    """Phrase verdicts from a dict, ratings handed out in order."""
    name = 'list-judge'

    def __init__(self, verdicts, ratings):
        self.verdicts = verdicts
        self.ratings = list(ratings)

    def match_phrases(self, pairs):
        return [self.verdicts[p] for p in pairs]

    def rate_answers(self, items):
        return self.ratings[:len(items)]


def test_grounding_bench_counts_every_question_of_an_image():
    def question(phrase, answer):
        box = torch.tensor([[0., 0., 8., 8.]])
        return dict(
            img_id=1,
            category='conv',
            gt_phrases=['dog'],
            gt_instances=dict(bboxes=box),
            pred_phrases=[phrase],
            pred_instances=dict(bboxes=box.clone()),
            pred_caption=answer,
            reference_answer='A dog.',
            question='What is it?')

    judge = ListJudge({('a dog', 'dog'): True, ('a cat', 'dog'): False},
                      ratings=[(8.0, 6.0), (8.0, 2.0)])
    metric = GroundingBenchMetric(judge=judge)
    metric.process({}, [question('a dog', 'A dog.'),
                        question('a cat', 'A cat.')])
    res = metric.compute_metrics(metric.results)
    # 1 of 2 groundings correct, 1 of 2 GT entities (one per question) found
    assert res['grounded_precision'] == pytest.approx(50.0)
    assert res['grounded_recall'] == pytest.approx(50.0)
    # chat: 100 * (6 + 2) / (8 + 8)
    assert res['chat_all'] == pytest.approx(50.0)
    assert res['chat_conv'] == pytest.approx(50.0)


def test_gcg_counts_two_captions_of_one_image():
    def caption(pred):
        return dict(
            img_id='000000000001', ori_shape=(H, W), gt_phrases=['a square'],
            gt_captions=['a square'], pred_caption='a square',
            pred_phrases=['a square'] if pred.any() else [],
            gt_instances=dict(
                masks=BitmapMasks(SQUARE[None].astype(np.uint8), H, W)),
            pred_instances=dict(
                masks=torch.from_numpy(pred[None] if pred.any() else
                                       np.zeros((0, H, W), dtype=bool))))

    metric = GCGMetric(caption_metrics=(), text_encoder=TableEncoder())
    metric.process({}, [caption(SQUARE), caption(EMPTY)])
    res = metric.compute_metrics(metric.results)
    assert res['mIoU'] == pytest.approx(50.0)  # (1 + 0) / 2
    assert res['recall'] == pytest.approx(50.0)  # 1 of 2 GT phrases
    # 2 GT masks, 1 prediction (a TP): precision 1 up to recall 0.5, so
    # 51 of COCO's 101 recall points
    assert res['AP50'] == pytest.approx(100 * 51 / 101)


def test_region_caption_counts_two_regions_of_one_image():
    refs = ['a red square on the left', 'a small blue blob']
    metric = RegionCaptionMetric(caption_metrics=('CIDEr', ))
    # two regions of image 7, each captioned exactly as its reference
    metric.process({}, [
        dict(img_id=7, gt_captions=[ref], pred_caption=ref) for ref in refs
    ])
    res = metric.compute_metrics(metric.results)
    # CIDEr-D over 2 items: an n-gram of one item has idf log(2) > 0 (only
    # 'a' is in both, idf 0), so each identical pair has cosine 1 for
    # n = 1..4, no length penalty: 10 per item, x100. Merged into one
    # item, every idf would be log(1/1) = 0 and CIDEr 0.
    assert res['CIDEr'] == pytest.approx(1000.0)
