"""Slow end to end: tiny LLaVA-G stage 3 learns to answer about a region.

Starts from the tiny stage-2 run of the session fixture
``trained_tiny_llava_g`` (the `make demo` config on the default synthetic
world, seed 0; shared with the stage-2 e2e test), trains the stage-3 config
from that checkpoint with tools/train.py (300 iterations) and tests it with
tools/test.py on every ``<obj>`` question of synthetic val GVC-R (one
question per sample, a seeded click or box on the referred object), scored
by ``RegionQAAccuracyMetric``.

Measured (2 shared CPU cores; README, LLaVA-G stage 3), overall accuracy:
before stage 3 (stage-2 weights, random prompt encoder) 30.6, after stage 3
60.9 (colour 90.4, shape 34.0, size 54.5); "name the largest object" 57.8,
majority answer 34.3. Margins over the untrained-prompt model and the
majority answer are about half the measured gains; the one over "name the
largest object" is thin (+3.1 measured), so it is asserted as strictly
above. Only colour is learned from the prompt so far (shape and size stay
at the majority level), so the per-type check is on colour only.
"""
from pathlib import Path

import pytest

from mmgrounding.testing import load_script, read_metrics, run_tool

ROOT = Path(__file__).resolve().parents[2]

STAGE3 = ROOT / 'configs/llava_grounding/' \
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_semsam-tiny_stage3_synthetic.py'
# accuracy points (x100), from the measured run (module docstring, README)
MARGIN_OVER_BEFORE_STAGE3 = 15.0  # measured +30.3
MARGIN_OVER_LARGEST = 0.0  # measured +3.1 (asserted: strictly above)
MARGIN_OVER_MAJORITY = 13.0  # measured +26.6
COLOUR_MARGIN_OVER_MAJORITY = 35.0  # measured 90.4 vs 15.7


@pytest.mark.slow
def test_tiny_llava_g_stage3_answers_region_questions(trained_tiny_llava_g,
                                                      tmp_path):
    root, _, s2_ckpt = trained_tiny_llava_g  # the shared stage-2 run

    # before stage 3: stage-2 weights, random prompt encoder
    run_tool([ROOT / 'tools/test.py', STAGE3, s2_ckpt, '--work-dir',
              tmp_path / 'before'], root)
    before = read_metrics(tmp_path / 'before')

    s3 = tmp_path / 'stage3'
    run_tool([ROOT / 'tools/train.py', STAGE3, '--work-dir', s3,
              '--cfg-options', f'load_from={s2_ckpt}'], root)
    s3_ckpt = (s3 / 'last_checkpoint').read_text().strip()
    run_tool([ROOT / 'tools/test.py', STAGE3, s3_ckpt, '--work-dir',
              tmp_path / 'after'], root)
    after = read_metrics(tmp_path / 'after')

    baselines = load_script(
        'tools/analysis_tools/region_qa_baselines.py').evaluate_baselines(
            str(root / 'data' / 'synthetic'))
    print(f'before stage 3 {before}\nafter {after}\nbaselines {baselines}')
    overall = after['region_qa/overall']
    assert overall >= before['region_qa/overall'] + \
        MARGIN_OVER_BEFORE_STAGE3, (before, after)
    assert overall > baselines['name the largest object']['overall'] + \
        MARGIN_OVER_LARGEST, (after, baselines)
    assert overall >= baselines['majority answer']['overall'] + \
        MARGIN_OVER_MAJORITY, (after, baselines)
    # the colour of the prompted object is read from the prompt
    assert after['region_qa/color_acc'] >= \
        baselines['majority answer']['color_acc'] + \
        COLOUR_MARGIN_OVER_MAJORITY, (after, baselines)
