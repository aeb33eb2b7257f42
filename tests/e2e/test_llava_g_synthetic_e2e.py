"""Slow end to end: tiny LLaVA-G through tools/train.py + tools/test.py.

What `make demo MODEL=llava_g` does, asserted: the tiny LLaVA-G config
trains on the default synthetic world (seed 0) on CPU (the session fixture
``trained_tiny_llava_g``, shared with the stage-3 test); then every val
referring expression is scored for REC (Acc@0.5) and RES (gIoU/cIoU) with
the expression given in the answer (one teacher-forced forward, as GLaMM's
official RES evaluation), and synthetic GVC val for Grounding-Bench
grounded F1 on the model's own generated answers.

Measured (x100, seed 0, 600 iterations; README), two runs: one thread on
shared cores / this test in a fresh-clone `make test` (2 threads):
untrained REC 1.3, gIoU 7.3, GVC F1 0.0; trained REC 56.4 / 50.7, gIoU
50.7 / 48.4, cIoU 40.8 / 38.8, F1 22.7 / 12.2. Heuristics
(``synthetic_baselines.py``): REC every shape 5.3, largest object 35.2,
named colour 19.7, named shape 29.1; gIoU 34.9 / 35.2 / 25.2 / 54.7.
So the model beats EVERY heuristic on REC, and on
RES every heuristic but "named shape" (50.7 / 48.4 vs 54.7: not asserted,
the open part of the recipe). Margins over the untrained model are about a third of
the gains; margins over the heuristics about half the measured gaps.
"""
from pathlib import Path

import pytest

from mmgrounding.testing import (evaluate_config, load_script, read_metrics,
                                 run_tool)

ROOT = Path(__file__).resolve().parents[2]
LLAVA_G_STEM = ('configs/llava_grounding/'
                'llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic')

GIVEN_CFG = ROOT / f'{LLAVA_G_STEM}-given-answer-test.py'
GVC_CFG = ROOT / f'{LLAVA_G_STEM}-gvc-test.py'
# margins, x100 (see the module docstring)
MARGIN_OVER_UNTRAINED = 20.0
MARGIN_REC_OVER_HEURISTICS = 10.0  # measured +21.2 / +15.5 over the best
MARGIN_RES_OVER_HEURISTICS = 5.0  # measured +15.5 / +13.2 over every shape /
# largest object / named colour (best 35.2)
MARGIN_F1_OVER_UNTRAINED = 5.0  # measured +22.7 / +12.2
#: the heuristic the tiny recipe does not beat yet on RES (54.7 vs 50.7)
NOT_YET_BEATEN_ON_RES = 'named shape'



@pytest.mark.slow
def test_tiny_llava_g_learns_on_synthetic_world(trained_tiny_llava_g,
                                               tmp_path, monkeypatch):
    root, _, ckpt = trained_tiny_llava_g
    monkeypatch.chdir(root)  # the configs read data/synthetic
    untrained = evaluate_config(GIVEN_CFG, tmp_path / 'untrained')
    untrained_gvc = evaluate_config(GVC_CFG, tmp_path / 'untrained_gvc')

    run_tool([ROOT / 'tools/test.py', GIVEN_CFG, ckpt, '--work-dir',
              tmp_path / 'given'], root)
    trained = read_metrics(tmp_path / 'given')
    run_tool([ROOT / 'tools/test.py', GVC_CFG, ckpt, '--work-dir',
              tmp_path / 'gvc'], root)
    gvc = read_metrics(tmp_path / 'gvc')

    baselines = load_script(
        'tools/analysis_tools/synthetic_baselines.py').evaluate_baselines(
            str(root / 'data' / 'synthetic'))
    best_rec = 100 * max(b['rec_acc'] for b in baselines.values())
    best_giou = 100 * max(b['gIoU'] for name, b in baselines.items()
                          if name != NOT_YET_BEATEN_ON_RES)
    print(f'untrained {untrained} {untrained_gvc}\ntrained {trained}\n'
          f'gvc {gvc}\nbaselines {baselines}')
    # REC: above the untrained model and EVERY heuristic
    assert trained['rec/Acc@1'] >= untrained['rec/Acc@1'] + \
        MARGIN_OVER_UNTRAINED
    assert trained['rec/Acc@1'] >= best_rec + MARGIN_REC_OVER_HEURISTICS
    # RES: above the untrained model and every heuristic but named shape
    assert trained['refseg/gIoU'] >= untrained['refseg/gIoU'] + \
        MARGIN_OVER_UNTRAINED
    assert trained['refseg/gIoU'] >= best_giou + MARGIN_RES_OVER_HEURISTICS
    assert trained['refseg/cIoU'] > untrained['refseg/cIoU']
    # grounded visual chat on its own answers: far above untrained
    key = 'grounding_bench/grounded_F1'
    assert gvc[key] >= untrained_gvc[key] + MARGIN_F1_OVER_UNTRAINED, (
        gvc, untrained_gvc)
