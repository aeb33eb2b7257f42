"""Slow end to end: tiny LLaVA-G stage 3 learns to answer about a region.

Starts from the tiny stage-2 run of the session fixture
``trained_tiny_llava_g`` (the `make demo` config on the default synthetic
world, seed 0; shared with the stage-2 e2e test), trains the stage-3 config
from that checkpoint with tools/train.py (300 iterations) and tests it with
tools/test.py on every ``<obj>`` question of synthetic val GVC-R (one
question per sample, a seeded click or box on the referred object), scored
by ``RegionQAAccuracyMetric``.

Measured, overall accuracy (x100; README, LLaVA-G stage 3), two runs:
(1) stage 2 and stage 3 with one thread each while other jobs shared the
cores: before stage 3 30.6, after 60.9 (colour 90.4, shape 34.0, size
54.5); (2) this test in a fresh-clone `make test` (2 threads): before 22.3,
after 45.9 (colour 50.4, shape 34.0, size 51.8). Baselines: "name the
largest object" 57.8, majority answer 34.3 (colour 15.7). So the model
reliably learns to read the colour of the prompted object and beats the
untrained-prompt model and the majority answer; it does NOT reliably beat
"name the largest object" (run 1 did, run 2 did not), which is not
asserted: the open part of the tiny stage-3 recipe. Shape and size stay at
the majority level. Margins are below the smaller of the two measured gaps.
"""
from pathlib import Path

import pytest

from mmgrounding.testing import load_script, read_metrics, run_tool

ROOT = Path(__file__).resolve().parents[2]

STAGE3 = ROOT / 'configs/llava_grounding/' \
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_semsam-tiny_stage3_synthetic.py'
# accuracy points (x100), below the smaller measured gap (docstring)
MARGIN_OVER_BEFORE_STAGE3 = 10.0  # measured +30.3 / +23.6
MARGIN_OVER_MAJORITY = 5.0  # measured +26.6 / +11.6
COLOUR_MARGIN_OVER_MAJORITY = 15.0  # measured +74.7 / +34.7


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
    assert overall >= baselines['majority answer']['overall'] + \
        MARGIN_OVER_MAJORITY, (after, baselines)
    # the colour of the prompted object is read from the prompt
    assert after['region_qa/color_acc'] >= \
        baselines['majority answer']['color_acc'] + \
        COLOUR_MARGIN_OVER_MAJORITY, (after, baselines)
