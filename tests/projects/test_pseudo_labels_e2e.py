"""Slow end to end: GLaMM GCG pseudo-labels -> an mmdet detector.

On a small synthetic world (seed 0, 400 images: 320 train, 40 val): the
tiny GLaMM trains briefly with ``tools/train.py`` (the ``make demo``
config), ``tools/test.py`` runs the pseudo-label config over the train
images (COCO results via ``CocoMetric``, ODVG records via
``DumpODVGResults``), ``results_to_instances.py`` makes the training file
and the tiny RTMDet trains on it with ``tools/train.py``. Asserted against
the trivial baseline of one whole-image box per image and class (same
files, mmdet ``CocoMetric``): the pseudo-labels themselves (against the
train GT) and the detector trained on them (against the val GT) both beat
it; the ODVG file loads with mmdet's ``ODVGDataset``.
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
GLAMM_CFG = ROOT / 'configs/glamm/' \
    'glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py'
PL_CFG = PROJECT / 'configs/glamm-tiny_gcg-pseudo-labels_synthetic-train.py'
DET_CFG = PROJECT / 'configs/rtmdet_tiny-w025_synthetic-pseudo-labels.py'
NUM_IMAGES = 400
GLAMM_ITERS = 150
DET_EPOCHS = 3


@pytest.mark.slow
def test_pseudo_labels_end_to_end(tmp_path):
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
    _run([ROOT / 'tools/train.py', GLAMM_CFG, '--work-dir', work / 'glamm',
          '--cfg-options', f'train_cfg.max_iters={GLAMM_ITERS}',
          f'default_hooks.checkpoint.interval={GLAMM_ITERS}'], tmp_path)
    _run([ROOT / 'tools/test.py', PL_CFG,
          work / 'glamm' / f'iter_{GLAMM_ITERS}.pth', '--work-dir',
          work / 'pl_test'], tmp_path)
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

    trivial_train = whole_image_detector(str(train_gt))
    trivial_val = whole_image_detector(
        str(data / 'annotations' / 'instances_val.json'))
    print(f'pseudo-labels {pseudo}\ndetector AP50 {det_ap50}\n'
          f'trivial train {trivial_train}\ntrivial val {trivial_val}')
    assert pseudo['pseudo/bbox_mAP_50'] > trivial_train['bbox_mAP_50'] + \
        0.01, (pseudo, trivial_train)
    assert det_ap50 > trivial_val['bbox_mAP_50'], (det_ap50, trivial_val)
    # the ODVG records are mmdet grounding training data
    odvg = ODVGDataset(data_root=str(out), ann_file='gcg_train_odvg.jsonl',
                       data_prefix=dict(img=str(data / 'images') + os.sep),
                       pipeline=[], return_classes=True)
    assert len(odvg) == num_train
    regions = sum(len(odvg.get_data_info(i)['phrases'])
                  for i in range(len(odvg)))
    assert regions == pseudo['pl_odvg/num_regions'] > 0
