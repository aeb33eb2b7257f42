"""Slow end to end: GLaMM GCG pseudo-labels -> an mmdet detector.

The annotator is the tiny GLaMM the GLaMM e2e test trains (the session
fixture ``trained_tiny_glamm``: the ``make demo`` config, 1000 iterations
on the default world). On a small synthetic world (seed 0, 400 images: 320
train, 40 val; same generator, same tokenizer) ``tools/test.py`` runs the
pseudo-label config over the train images (COCO results via
``CocoMetric``, ODVG records via ``DumpODVGResults``),
``results_to_instances.py`` makes the training file and the tiny RTMDet
trains on it with ``tools/train.py``, validated on the real val GT.

Asserted: one ODVG record per train image, read back by mmdet's
``ODVGDataset``; the pseudo boxes localise GT objects (box IoU >= 0.5 with
some GT object, class-agnostic) far more often than the trivial baseline
of one whole-image box per image (which never does); the detector trained
on them trains and is scored on the val GT (``coco/bbox_mAP_50`` logged,
not asserted: two detector epochs; the class-aware mAP of the pseudo-labels
and of a fully trained detector is measured in the projects README).
"""
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from mmgrounding.datasets.synthetic import generate_world

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / 'projects' / 'pseudo_labels'
PL_CFG = PROJECT / 'configs/glamm-tiny_gcg-pseudo-labels_synthetic-train.py'
DET_CFG = PROJECT / 'configs/rtmdet_tiny-w025_synthetic-pseudo-labels.py'
NUM_IMAGES = 400
DET_EPOCHS = 2


@pytest.mark.slow
def test_pseudo_labels_end_to_end(trained_tiny_glamm, tmp_path):
    sys.path.insert(0, str(ROOT))
    from mmdet.datasets import ODVGDataset

    from projects.detect_then_describe.tools.baselines import \
        whole_image_detector
    from projects.detect_then_describe.tools.split_instances import \
        split_instances
    # the detect_then_describe e2e helpers (subprocess run, metrics files)
    spec = importlib.util.spec_from_file_location(
        'dtd_e2e', Path(__file__).with_name(
            'test_detect_then_describe_e2e.py'))
    dtd_e2e = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dtd_e2e)
    _run, _metrics, _val_metric = (dtd_e2e._run, dtd_e2e._metrics,
                                   dtd_e2e._val_metric)
    data = tmp_path / 'data' / 'synthetic'
    generate_world(str(data), num_images=NUM_IMAGES, seed=0)
    split_instances(str(data))
    work = tmp_path / 'work_dirs'
    _run([ROOT / 'tools/test.py', PL_CFG, trained_tiny_glamm.checkpoint,
          '--work-dir', work / 'pl_test'], tmp_path)
    pseudo = _metrics(work / 'pl_test')
    out = tmp_path / 'work_dirs' / 'pl_glamm'
    train_gt = data / 'annotations' / 'instances_train.json'
    num_train = len(json.loads(train_gt.read_text())['images'])
    assert pseudo['pl_odvg/num_records'] == num_train
    assert pseudo['pseudo/num_kept'] > 0, pseudo
    _run([PROJECT / 'tools/results_to_instances.py',
          out / 'gcg_train.segm.json', '--images', train_gt, '--out',
          out / 'instances_train_pseudo.json'], tmp_path)
    _run([ROOT / 'tools/train.py', DET_CFG, '--work-dir', work / 'det',
          '--cfg-options', f'max_epochs={DET_EPOCHS}',
          f'train_cfg.max_epochs={DET_EPOCHS}',
          f'train_cfg.val_interval={DET_EPOCHS}',
          f'default_hooks.checkpoint.interval={DET_EPOCHS}',
          f'param_scheduler.1.end={DET_EPOCHS}',
          f'param_scheduler.1.T_max={DET_EPOCHS - 1}'], tmp_path)
    det_ap50 = _val_metric(work / 'det', 'coco/bbox_mAP_50')

    hit = _localised(out / 'gcg_train.bbox.json', train_gt)
    trivial = whole_image_detector(str(train_gt))
    print(f'pseudo-labels {pseudo}\nlocalised {hit}\ndetector val AP50 '
          f'{det_ap50}\ntrivial train {trivial}')
    # whole-image boxes never overlap a 17-31 px object at IoU 0.5
    assert trivial['box_recall'] == 0.0
    # measured 26.6 with a 1000-iteration annotator (whole-image boxes: 0)
    assert hit > 10.0, hit
    # the ODVG records are mmdet grounding training data
    odvg = ODVGDataset(data_root=str(out), ann_file='gcg_train_odvg.jsonl',
                       data_prefix=dict(img=str(data / 'images') + os.sep),
                       pipeline=[], return_classes=True)
    assert len(odvg) == num_train
    regions = sum(len(odvg.get_data_info(i)['phrases'])
                  for i in range(len(odvg)))
    assert regions == pseudo['pl_odvg/num_regions'] > 0


def _localised(results_file, gt_file):
    """% of pseudo boxes with IoU >= 0.5 to some GT object of their image."""
    import numpy as np
    from mmdet.evaluation.functional import bbox_overlaps
    gt = json.loads(Path(gt_file).read_text())
    boxes = {}
    for a in gt['annotations']:
        x, y, w, h = a['bbox']
        boxes.setdefault(a['image_id'], []).append([x, y, x + w, y + h])
    results = json.loads(Path(results_file).read_text())
    hits = 0
    for r in results:
        x, y, w, h = r['bbox']
        ious = bbox_overlaps(np.array([[x, y, x + w, y + h]]),
                             np.array(boxes.get(r['image_id'], [[0] * 4])))
        hits += int(ious.max() >= 0.5)
    return 100.0 * hits / max(len(results), 1)
