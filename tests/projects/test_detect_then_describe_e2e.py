"""Slow end to end: detect-then-describe through mmdet/our tools.

On the default synthetic world (seed 0): the tiny RTMDet trains with
``tools/train.py`` (mmdet config via ``mmdet::``), the tiny GLaMM trains on
region captions briefly, ``compose_checkpoint.py`` joins them, and
``tools/test.py`` runs the mixed pipeline over synthetic val. Asserted
against the trivial baselines of ``tools/baselines.py`` (same files):
the detector's bbox mAP and the pipeline's box recall beat one whole-image
box per image, every kept box gets a caption, and the captions of the
matched boxes beat the detector's class name as a caption (CIDEr-D): the
LMM says more than the detector knows (colour, size).
"""
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmgrounding.datasets.synthetic import generate_world

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / 'projects' / 'detect_then_describe'
DET_CFG = PROJECT / 'configs' / 'rtmdet_tiny-w025_synthetic.py'
LMM_CFG = PROJECT / 'configs' / 'glamm_llama-tiny_regcap_synthetic.py'
DTD_CFG = PROJECT / 'configs' / (
    'detect-then-describe_rtmdet-tiny_glamm-tiny_synthetic.py')
DET_EPOCHS = 1
LMM_ITERS = 60
VAL_IMAGES = 60  # the first val images (the README run uses all 220)


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE='1')
    out = subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd,
                         env=env, capture_output=True, text=True,
                         timeout=1800)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def _metrics(work_dir):
    files = glob.glob(os.path.join(work_dir, '*', '*.json'))
    files = [f for f in files if not f.endswith('scalars.json')]
    assert files, f'no metrics json under {work_dir}'
    with open(sorted(files)[-1]) as f:
        return json.load(f)


def _val_metric(work_dir, key):
    """The last logged value of ``key`` in a training run's scalars."""
    files = glob.glob(os.path.join(work_dir, '*', 'vis_data',
                                   'scalars.json'))
    assert files, f'no scalars.json under {work_dir}'
    values = []
    with open(sorted(files)[-1]) as f:
        for line in f:
            record = json.loads(line)
            if key in record:
                values.append(record[key])
    assert values, f'{key} never logged under {work_dir}'
    return values[-1]


@pytest.mark.slow
def test_detect_then_describe_end_to_end(tmp_path):
    sys.path.insert(0, str(ROOT))
    from projects.detect_then_describe.tools.baselines import (
        caption_baselines, whole_image_detector)
    from projects.detect_then_describe.tools.split_instances import \
        split_instances
    data = tmp_path / 'data' / 'synthetic'
    generate_world(str(data), num_images=2200, seed=0)
    split_instances(str(data))
    work = tmp_path / 'work_dirs'
    _run([ROOT / 'tools/train.py', DET_CFG, '--work-dir', work / 'det',
          '--cfg-options', f'max_epochs={DET_EPOCHS}',
          f'train_cfg.max_epochs={DET_EPOCHS}',
          f'train_cfg.val_interval={DET_EPOCHS}',
          f'default_hooks.checkpoint.interval={DET_EPOCHS}'], tmp_path)
    det_map = _val_metric(work / 'det', 'coco/bbox_mAP')
    _run([ROOT / 'tools/train.py', LMM_CFG, '--work-dir', work / 'lmm',
          '--cfg-options', f'train_cfg.max_iters={LMM_ITERS}',
          f'default_hooks.checkpoint.interval={LMM_ITERS}'], tmp_path)
    overrides = [
        f'model.detector.checkpoint={work}/det/epoch_{DET_EPOCHS}.pth',
        f'model.lmm.checkpoint={work}/lmm/iter_{LMM_ITERS}.pth',
        f'test_dataloader.dataset.indices={VAL_IMAGES}'
    ]
    ckpt = work / 'dtd.pth'
    _run([PROJECT / 'tools/compose_checkpoint.py', DTD_CFG, ckpt,
          '--cfg-options'] + overrides, tmp_path)
    pred = work / 'dtd_pred.pkl'
    _run([ROOT / 'tools/test.py', DTD_CFG, ckpt, '--work-dir', work / 'dtd',
          '--out', pred, '--cfg-options'] + overrides, tmp_path)
    got = _metrics(work / 'dtd')

    trivial = whole_image_detector(
        str(data / 'annotations' / 'instances_val.json'))
    assert det_map > trivial['bbox_mAP'] + 0.05, (det_map, trivial)
    assert got['dense_caption/box_recall'] > trivial['box_recall'] + 20.0
    assert got['dense_caption/num_matched'] > 0
    base = caption_baselines(
        str(pred),
        str(data / 'annotations/region_caption/vg_train.json'),
        ['circle', 'square', 'triangle'])
    assert base['lmm']['CIDEr'] == pytest.approx(
        got['dense_caption/CIDEr'], rel=1e-6)
    assert got['dense_caption/CIDEr'] > \
        base['detector class name']['CIDEr'] + 5.0, base
