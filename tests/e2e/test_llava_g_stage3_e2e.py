"""Slow end to end: tiny LLaVA-G stage 3 learns to answer about a region.

Self-contained on a clean clone: the default synthetic world (seed 0) is
generated in a temp dir, the tiny stage-2 recipe trains briefly
(``STAGE2_ITERS``; the region questions need its CLIP / projector / LM only
as a start), then the stage-3 config trains from that checkpoint with
tools/train.py and is tested with tools/test.py on every ``<obj>`` question
of synthetic val GVC-R (one question per sample, a seeded click or box on
the referred object). Region-question accuracy (colour / shape / size
attribute word, ``RegionQAAccuracyMetric``) must be far above the same model
before stage 3 (stage-2 weights, random prompt encoder) and above the
heuristics of tools/analysis_tools/region_qa_baselines.py: "name the
largest object" (57.8 overall) and the majority answer per type (34.3).

Margins (accuracy points): TARGETS, not yet from a passing run. As
measured so far (README, LLaVA-G stage 3) the tiny stage-3 recipe answers at
the majority level (32.7 overall after 200 iterations), so this test FAILS
until the recipe learns; set each margin to about half the measured gain
then. Run time not measured end to end: the world (~1 min), 60 stage-2
iterations (~2 min), 300 stage-3 iterations (~10 min at 2 s) and two tests
of 541 questions (~1 min each) exceed the ~12-minute target; cut the
stage-3 iterations once a shorter recipe learns.
"""
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmgrounding.datasets.synthetic import generate_world
from mmgrounding.testing import load_script

ROOT = Path(__file__).resolve().parents[2]
STAGE2 = ROOT / 'configs/llava_grounding/' \
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic.py'
STAGE3 = ROOT / 'configs/llava_grounding/' \
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_semsam-tiny_stage3_synthetic.py'
STAGE2_ITERS = 60
# accuracy points (x100), from the measured run (module docstring, README)
MARGIN_OVER_BEFORE_STAGE3 = 25.0
MARGIN_OVER_LARGEST = 10.0
MARGIN_OVER_MAJORITY = 25.0


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE='1',
               OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd,
                         env=env, capture_output=True, text=True,
                         timeout=1800)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def _metrics(work_dir):
    files = glob.glob(os.path.join(work_dir, '*', '*.json'))
    assert files, f'no metrics json under {work_dir}'
    with open(sorted(files)[-1]) as f:
        return json.load(f)


@pytest.mark.slow
def test_tiny_llava_g_stage3_answers_region_questions(tmp_path):
    generate_world(str(tmp_path / 'data' / 'synthetic'), seed=0)
    s2 = tmp_path / 'stage2'
    _run([ROOT / 'tools/train.py', STAGE2, '--work-dir', s2,
          '--cfg-options', f'train_cfg.max_iters={STAGE2_ITERS}',
          f'default_hooks.checkpoint.interval={STAGE2_ITERS}'], tmp_path)
    s2_ckpt = (s2 / 'last_checkpoint').read_text().strip()

    # before stage 3: stage-2 weights, random prompt encoder
    _run([ROOT / 'tools/test.py', STAGE3, s2_ckpt, '--work-dir',
          tmp_path / 'before'], tmp_path)
    before = _metrics(tmp_path / 'before')

    s3 = tmp_path / 'stage3'
    _run([ROOT / 'tools/train.py', STAGE3, '--work-dir', s3,
          '--cfg-options', f'load_from={s2_ckpt}'], tmp_path)
    s3_ckpt = (s3 / 'last_checkpoint').read_text().strip()
    _run([ROOT / 'tools/test.py', STAGE3, s3_ckpt, '--work-dir',
          tmp_path / 'after'], tmp_path)
    after = _metrics(tmp_path / 'after')

    baselines = load_script(
        'tools/analysis_tools/region_qa_baselines.py').evaluate_baselines(
            str(tmp_path / 'data' / 'synthetic'))
    print(f'before stage 3 {before}\nafter {after}\nbaselines {baselines}')
    overall = after['region_qa/overall']
    assert overall >= before['region_qa/overall'] + \
        MARGIN_OVER_BEFORE_STAGE3, (before, after)
    assert overall >= baselines['name the largest object']['overall'] + \
        MARGIN_OVER_LARGEST, (after, baselines)
    assert overall >= baselines['majority answer']['overall'] + \
        MARGIN_OVER_MAJORITY, (after, baselines)
    # every question type learned, not one carrying the mean
    for kind in ('color', 'shape', 'size'):
        assert after[f'region_qa/{kind}_acc'] > \
            baselines['majority answer'][f'{kind}_acc'], (kind, after)
