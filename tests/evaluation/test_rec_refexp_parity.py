"""RECAccMetric equals mmdet's RefExpMetric precision@k (IoU 0.5) on the
same hand-built ranked predictions (4 expressions, values by hand)."""
import json

import pytest
import torch
from mmdet.evaluation import RefExpMetric

from mmgrounding.evaluation.metrics import RECAccMetric

# GT box per expression (xyxy) and a ranked prediction list (score order)
GT = [[0, 0, 10, 10], [20, 20, 40, 40], [5, 5, 15, 15], [0, 0, 8, 8]]
PRED = [
    # hit at rank 1 (IoU 1)
    [[0, 0, 10, 10], [50, 50, 60, 60]],
    # rank 1 misses (IoU 100 / 400 = 0.25), rank 2 hits (IoU 1)
    [[20, 20, 30, 30], [20, 20, 40, 40]],
    # IoU exactly 0.5 at rank 1 (50 / 100): inclusive, a hit
    [[5, 5, 15, 10], [0, 0, 1, 1]],
    # no hit in the list
    [[30, 30, 40, 40], [20, 20, 30, 30]],
]


def test_rec_acc_equals_refexp_precision(tmp_path):
    coco = dict(
        images=[dict(id=i, file_name=f'{i}.png', height=64, width=64,
                     dataset_name='refcoco') for i in range(4)],
        annotations=[dict(id=i + 1, image_id=i, category_id=1, iscrowd=0,
                          bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                          area=(b[2] - b[0]) * (b[3] - b[1]))
                     for i, b in enumerate(GT)],
        categories=[dict(id=1, name='object')])
    ann = tmp_path / 'final_refcoco_val.json'
    ann.write_text(json.dumps(coco))
    samples = []
    for i in range(4):
        n = len(PRED[i])
        samples.append(dict(
            img_id=i,
            gt_instances=dict(bboxes=torch.tensor([GT[i]], dtype=torch.
                                                  float32)),
            pred_instances=dict(
                bboxes=torch.tensor(PRED[i], dtype=torch.float32),
                scores=torch.linspace(0.9, 0.1, n))))
    refexp = RefExpMetric(ann_file=str(ann), topk=(1, 5, 10))
    refexp.process({}, samples)
    theirs = refexp.compute_metrics(refexp.results)
    ours = RECAccMetric(topk=(1, 5), scale=1.0)
    ours.process({}, samples)
    mine = ours.compute_metrics(ours.results)
    # by hand: top-1 hits on expressions 0 and 2; top-5 also on 1
    assert mine['Acc@1'] == pytest.approx(0.5)
    assert mine['Acc@5'] == pytest.approx(0.75)
    assert theirs['refcoco_precision@1'] == pytest.approx(mine['Acc@1'])
    assert theirs['refcoco_precision@5'] == pytest.approx(mine['Acc@5'])
