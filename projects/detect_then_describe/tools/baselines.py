"""Trivial baselines that the detect-then-describe numbers must beat.

* ``detector``: one whole-image box per image and class (score 1), scored
  by mmdet's ``CocoMetric`` on a COCO instances file (bbox mAP), and its box
  recall at IoU 0.5.
* ``captions PRED.pkl``: the same detected boxes (a ``tools/test.py --out``
  dump of the DetectThenDescribe config) with the LMM's captions replaced by
  (a) the most frequent caption of the region-caption training file and
  (b) the detector's class name, scored by ``DenseRegionCaptionMetric``.

    python projects/detect_then_describe/tools/baselines.py detector \
        data/synthetic/annotations/instances_val.json
    python projects/detect_then_describe/tools/baselines.py captions \
        work_dirs/dtd/predictions.pkl \
        --train-captions \
        data/synthetic/annotations/region_caption/vg_train.json
"""
import argparse
import copy
import json
from collections import Counter
from typing import Dict, List, Sequence

import torch
from mmdet.evaluation import CocoMetric

from mmgrounding.evaluation.prediction_io import load_prediction_pickle
from projects.detect_then_describe.detect_then_describe.metrics import (
    DenseRegionCaptionMetric, recalled)


def whole_image_detector(ann_file: str) -> Dict[str, float]:
    """bbox mAP / AP50 and box recall of one whole-image box per class."""
    with open(ann_file) as f:
        coco = json.load(f)
    num_classes = len(coco['categories'])
    metric = CocoMetric(ann_file=ann_file, metric='bbox')
    metric.dataset_meta = dict(
        classes=[c['name'] for c in sorted(coco['categories'],
                                           key=lambda c: c['id'])])
    gts: Dict[int, List[List[float]]] = {}
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        gts.setdefault(a['image_id'], []).append([x, y, x + w, y + h])
    samples, hit, total = [], 0, 0
    for img in coco['images']:
        box = torch.tensor([[0., 0., img['width'], img['height']]])
        samples.append(
            dict(img_id=img['id'], ori_shape=(img['height'], img['width']),
                 pred_instances=dict(
                     bboxes=box.repeat(num_classes, 1),
                     scores=torch.ones(num_classes),
                     labels=torch.arange(num_classes))))
        gt = torch.tensor(gts.get(img['id'], []), dtype=torch.float32)
        hit += int(recalled(box, gt).sum())
        total += len(gt)
    metric.process({}, samples)
    out = metric.compute_metrics(metric.results)
    out['box_recall'] = 100.0 * hit / max(total, 1)
    return out


def caption_baselines(pred_file: str, train_captions: str,
                      classes: Sequence[str]) -> Dict[str, Dict]:
    """Dense-caption scores with the LMM captions replaced."""
    preds = load_prediction_pickle(pred_file)
    with open(train_captions) as f:
        data = json.load(f)
    counts = Counter(
        ' '.join(str(a.get('caption', '')).split())
        for a in data['annotations'] if a.get('caption'))
    counts.update(' '.join(str(i['caption']).split())
                  for i in data['images'] if i.get('caption'))
    constant = counts.most_common(1)[0][0]
    out = {}
    for name, fn in (
            ('lmm', None),
            (f'constant "{constant}"', lambda s: [constant] * len(
                s['pred_region_captions'])),
            ('detector class name', lambda s: [
                classes[int(k)] for k in s['pred_instances']['labels']
            ])):
        samples = copy.deepcopy(preds)
        if fn is not None:
            for s in samples:
                s['pred_region_captions'] = fn(s)
        metric = DenseRegionCaptionMetric()
        metric.process({}, samples)
        out[name] = metric.compute_metrics(metric.results)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='what', required=True)
    det = sub.add_parser('detector')
    det.add_argument('ann_file')
    cap = sub.add_parser('captions')
    cap.add_argument('pred_file')
    cap.add_argument('--train-captions', required=True)
    cap.add_argument('--classes', nargs='+',
                     default=['circle', 'square', 'triangle'])
    args = parser.parse_args()
    if args.what == 'detector':
        res = whole_image_detector(args.ann_file)
        print(json.dumps({k: round(float(v), 4) for k, v in res.items()}))
    else:
        for name, res in caption_baselines(args.pred_file,
                                           args.train_captions,
                                           args.classes).items():
            print(name, json.dumps({k: round(float(v), 3)
                                    for k, v in res.items()}))


if __name__ == '__main__':
    main()
