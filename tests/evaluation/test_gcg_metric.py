"""GCGMetric end to end on hand-made samples (no Java: captions off)."""
import numpy as np
import pytest
import torch
from eval_test_utils import TableEncoder, box_mask
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

from mmgrounding.evaluation import GCGMetric
from mmgrounding.registry import METRICS

H, W = 8, 8
A = box_mask(H, W, 0, 0, 4, 4)
B = box_mask(H, W, 4, 4, 8, 8)
C = box_mask(H, W, 0, 4, 4, 8)
EMPTY = np.zeros((H, W), dtype=bool)


def sample(img_id, gt, gt_phrases, pred, pred_phrases, as_element=False):
    """A GCG data sample (dict form, or a DetDataSample)."""
    gt_masks = BitmapMasks(np.stack(gt).astype(np.uint8), H, W) if gt else \
        BitmapMasks(np.zeros((0, H, W), np.uint8), H, W)
    pred_masks = torch.from_numpy(np.stack(pred)) if pred else \
        torch.zeros((0, H, W), dtype=torch.bool)
    if as_element:
        ds = DetDataSample(
            metainfo=dict(
                img_id=img_id,
                ori_shape=(H, W),
                gt_phrases=gt_phrases,
                gt_captions=['a cap']))
        ds.gt_instances = InstanceData(masks=gt_masks)
        ds.pred_instances = InstanceData(masks=pred_masks)
        ds.pred_phrases = pred_phrases
        ds.pred_text = '<p> x </p> [SEG]'
        return ds
    return dict(
        img_id=img_id,
        ori_shape=(H, W),
        gt_phrases=gt_phrases,
        gt_captions=['a cap'],
        gt_instances=dict(masks=gt_masks),
        pred_instances=dict(masks=pred_masks),
        pred_phrases=pred_phrases,
        pred_caption='a cap')


def evaluate(samples, quirks=True, groups=(('man', 'person'), )):
    metric = GCGMetric(
        caption_metrics=(),
        text_encoder=TableEncoder(groups),
        official_quirks=quirks)
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_registered_and_builds():
    metric = METRICS.build(
        dict(type='GCGMetric', caption_metrics=(), official_quirks=False))
    assert isinstance(metric, GCGMetric) and not metric.official_quirks
    with pytest.raises(ValueError, match='unknown caption metrics'):
        GCGMetric(caption_metrics=('SPICE', ))


def test_all_correct_and_all_wrong():
    good = evaluate(
        [sample(1, [A, B], ['man', 'dog'], [A, B], ['person', 'dog'])])
    assert good == pytest.approx(dict(AP50=100.0, mIoU=100.0, recall=100.0))
    bad = evaluate([sample(1, [A, B], ['man', 'dog'], [C], ['car'])])
    assert bad['AP50'] == 0.0 and bad['recall'] == 0.0
    # C overlaps neither A nor B
    assert bad['mIoU'] == 0.0


def test_no_prediction_counts_zero_for_the_image():
    res = evaluate([
        sample(1, [A], ['man'], [A], ['man']),
        sample(2, [B], ['dog'], [], []),
    ])
    assert res['mIoU'] == pytest.approx(50.0)
    assert res['recall'] == pytest.approx(50.0)
    assert res['AP50'] == pytest.approx(100 * 51 / 101)


def test_more_predictions_than_gt_and_duplicate_phrases():
    res = evaluate(
        [sample(1, [A], ['dog'], [A, B, C], ['dog', 'dog', 'dog'])])
    # extra predictions lower AP but not mIoU/recall
    assert res['mIoU'] == pytest.approx(100.0)
    assert res['recall'] == pytest.approx(100.0)
    assert res['AP50'] == pytest.approx(100.0)  # FPs ranked after the TP
    res = evaluate(
        [sample(1, [A], ['dog'], [B, A], ['dog', 'dog'])])
    assert res['AP50'] == pytest.approx(50.0)


def test_empty_masks_nan_rules():
    # empty GT and empty prediction: mIoU NaN -> image 0.0; recall: the NaN
    # cell passes the IoU test and the text matches -> 1 TP
    res = evaluate([sample(1, [EMPTY], ['dog'], [EMPTY], ['dog'])])
    assert res['mIoU'] == 0.0
    assert res['recall'] == pytest.approx(100.0)
    strict = evaluate([sample(1, [EMPTY], ['dog'], [EMPTY], ['dog'])],
                      quirks=False)
    assert strict['recall'] == 0.0


def test_mask_phrase_mismatch_quirk():
    # 2 predicted masks but 1 phrase; the best-IoU cell is (gt 1, pred 1):
    # the official code raises IndexError and the image scores 0 TP
    samples = [sample(1, [A, B], ['man', 'dog'], [A, B], ['man'])]
    assert evaluate(samples)['recall'] == 0.0
    assert evaluate(samples, quirks=False)['recall'] == pytest.approx(50.0)


def test_recall_first_failure_break_in_metric():
    # GT B is matched perfectly by pred 1 but the top-IoU pair (A, pred 0)
    # has unrelated text; B's IoU 1.0 ties with A's and A comes first
    samples = [sample(1, [A, B], ['man', 'dog'], [A, B], ['car', 'dog'])]
    assert evaluate(samples)['recall'] == 0.0
    assert evaluate(samples, quirks=False)['recall'] == pytest.approx(50.0)


def test_data_elements_duplicates_and_errors():
    s = sample(7, [A], ['man'], [A], ['man'], as_element=True)
    metric = GCGMetric(caption_metrics=(), text_encoder=TableEncoder())
    metric.process({}, [s, s])  # two samples of one image both count
    assert len(metric.results) == 2
    assert metric.results[0]['caption'] == 'x'  # cleaned pred_text
    res = metric.compute_metrics(metric.results)
    assert res['recall'] == pytest.approx(100.0)
    bad = sample(8, [A], ['man'], [A], ['man'])
    bad['pred_instances'] = dict(masks=torch.zeros((1, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match='img_id=8.*pred_instances.masks'):
        metric.process({}, [bad])


def test_text_embeddings_batched_once():
    enc = TableEncoder()
    metric = GCGMetric(caption_metrics=(), text_encoder=enc)
    metric.process({}, [
        sample(i, [A, B], ['man', 'dog'], [A, B], ['man', 'dog'])
        for i in range(5)
    ])
    metric.compute_metrics(metric.results)
    assert enc.calls == 1


def test_through_mmengine_evaluator():
    from mmengine.evaluator import Evaluator
    evaluator = Evaluator(
        GCGMetric(caption_metrics=(), text_encoder=TableEncoder()))
    evaluator.process(data_samples=[
        sample(i, [A], ['man'], [A if i else C], ['man'], as_element=True)
        for i in range(2)
    ])
    res = evaluator.evaluate(2)
    assert res['gcg/mIoU'] == pytest.approx(50.0)
    assert res['gcg/recall'] == pytest.approx(50.0)
