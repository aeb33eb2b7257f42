"""Official GCG JSON loader, eval_metric.py (pickle and official modes)."""
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from eval_test_utils import TableEncoder, box_mask
from mmdet.structures.mask import BitmapMasks

from mmgrounding.evaluation import GCGMetric, encode_rle, load_official_gcg
from mmgrounding.testing import load_script

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
H, W = 6, 8
A = box_mask(H, W, 0, 0, 3, 4)
B = box_mask(H, W, 3, 4, 6, 8)
C = box_mask(H, W, 0, 4, 3, 8)


def load_tool(name):
    return load_script(f'tools/analysis_tools/{name}.py')


def write_official(root, nested=True):
    """GT pair + prediction folder in the official GCG formats."""
    gt_dir, pred_dir = root / 'gt', root / 'pred'
    gt_dir.mkdir()
    pred_dir.mkdir()
    images = [dict(id='sa_2', file_name='sa_2.jpg', height=H, width=W),
              dict(id='sa_1', file_name='sa_1.jpg', height=H, width=W)]
    anns, k = [], 0
    for img_id, masks in (('sa_2', [A, B]), ('sa_1', [C])):
        for rle in encode_rle(np.stack(masks)):
            k += 1
            anns.append(dict(id=k, image_id=img_id, category_id=1,
                             segmentation=rle, area=1, iscrowd=0,
                             bbox=[0, 0, 1, 1]))
    json.dump(dict(images=images, annotations=anns,
                   categories=[dict(id=1, name='object')]),
              open(gt_dir / 'val_gcg_coco_mask_gt.json', 'w'))
    caps = [
        dict(id=1, image_id='sa_2', caption='a man with a dog',
             labels=['a man', 'a dog']),
        dict(id=2, image_id='sa_1', caption='a red car', labels=['a car']),
        dict(id=3, image_id='sa_1', caption='second reference',
             labels=['ignored']),
    ]
    json.dump(dict(images=images, annotations=caps),
              open(gt_dir / 'val_gcg_coco_caption_gt.json', 'w'))
    pred2 = dict(image_id='sa_2', caption='a man and a dog',
                 phrases=['a man', 'a dog'],
                 pred_masks=encode_rle(np.stack([A, C])))
    json.dump({'sa_2': pred2} if nested else pred2,
              open(pred_dir / 'sa_2.json', 'w'))
    json.dump(dict(image_id='sa_1', caption='a car', phrases=['a car'],
                   pred_masks=encode_rle(np.stack([C]))),
              open(pred_dir / 'sa_1.json', 'w'))
    return pred_dir, gt_dir


def samples_like_official():
    def s(img_id, gt, gt_ph, pred, pred_ph, caps, cap):
        return dict(
            img_id=img_id, ori_shape=(H, W), gt_phrases=gt_ph,
            gt_captions=caps, pred_caption=cap, pred_phrases=pred_ph,
            gt_instances=dict(masks=BitmapMasks(
                np.stack(gt).astype(np.uint8), H, W)),
            pred_instances=dict(masks=torch.from_numpy(np.stack(pred))))
    return [
        s('sa_2', [A, B], ['a man', 'a dog'], [A, C], ['a man', 'a dog'],
          ['a man with a dog'], 'a man and a dog'),
        s('sa_1', [C], ['a car'], [C], ['a car'],
          ['a red car', 'second reference'], 'a car'),
    ]


def test_loader_equals_metric_on_samples(tmp_path):
    pred_dir, gt_dir = write_official(tmp_path)
    records = load_official_gcg(str(pred_dir), str(gt_dir), 'val')
    assert [r['img_id'] for r in records] == ['sa_2', 'sa_1']
    assert records[1]['references'] == ['a red car', 'second reference']
    assert records[1]['gt_phrases'] == ['a car']  # first caption ann only
    metric = GCGMetric(caption_metrics=(), text_encoder=TableEncoder())
    official = metric.compute_metrics(records)
    metric.process({}, samples_like_official())
    ours = metric.compute_metrics(metric.results)
    assert official == pytest.approx(ours)
    # hand-computed: mIoU (1 + 1) / 2; recall 2 of 3 phrases; AP50 (all
    # scores 1, stable sort): sa_1 ranks first (sorted ids): C TP; then sa_2
    # in file order: A TP, C FP (no overlap with A or B). Precision envelope
    # 1, 1, 2/3 at recall 1/3, 2/3, 2/3; of COCO's 101 recall points
    # 0.00 .. 1.00, the 67 points 0.00 .. 0.66 get precision 1, the rest 0.
    assert official['mIoU'] == pytest.approx(100.0)
    assert official['recall'] == pytest.approx(200 / 3)
    assert official['AP50'] == pytest.approx(100 * 67 / 101)
    # missing file: error as the official script, or empty when asked
    (pred_dir / 'sa_1.json').unlink()
    with pytest.raises(FileNotFoundError, match='sa_1.json'):
        load_official_gcg(str(pred_dir), str(gt_dir), 'val')
    rec = load_official_gcg(str(pred_dir), str(gt_dir), 'val', 'empty')
    assert rec[1]['pred_rles'] == [] and rec[1]['caption'] == ''


def test_eval_metric_official_mode(tmp_path):
    pred_dir, gt_dir = write_official(tmp_path, nested=False)
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("default_scope = 'mmgrounding'\n"
                   "test_evaluator = dict(type='GCGMetric', "
                   "caption_metrics=(), official_quirks=False)\n")
    tool = load_tool('eval_metric')
    out = tmp_path / 'metrics.json'
    metrics = tool.main([
        str(cfg), '--official-gcg-dir',
        str(pred_dir), '--gt-dir',
        str(gt_dir), '--out',
        str(out)
    ])
    assert json.load(open(out)) == pytest.approx(metrics)
    assert metrics['gcg/mIoU'] == pytest.approx(100.0)
    assert set(metrics) == {'gcg/AP50', 'gcg/mIoU', 'gcg/recall'}


def test_eval_metric_on_pickle(tmp_path):
    a = box_mask(4, 4, 0, 0, 2, 2)
    preds = [
        dict(img_id=i, ori_shape=(4, 4), gt_phrases=['x'],
             gt_instances=dict(
                 masks=BitmapMasks(a[None].astype(np.uint8), 4, 4),
                 bboxes=torch.tensor([[0., 0., 2., 2.]])),
             pred_instances=dict(
                 masks=torch.from_numpy(a[None] if i else ~a[None]),
                 bboxes=torch.tensor([[0., 0., 2., 2.]]),
                 scores=torch.ones(1))) for i in range(2)
    ]
    pkl = tmp_path / 'preds.pkl'
    pickle.dump(preds, open(pkl, 'wb'))
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("default_scope = 'mmgrounding'\n"
                   "test_evaluator = [dict(type='RefSegGIoUMetric'), "
                   "dict(type='RECAccMetric')]\n")
    metrics = load_tool('eval_metric').main([str(cfg), str(pkl)])
    assert metrics['refseg/cIoU'] == pytest.approx(100 * 4 / 20)
    assert metrics['rec/Acc@1'] == pytest.approx(100.0)
    with pytest.raises(SystemExit):
        load_tool('eval_metric').main([str(cfg)])
