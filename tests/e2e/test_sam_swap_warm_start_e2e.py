"""Slow end to end: a part swap built from trained parts, fine-tuned.

GLaMM's SAM head on LLaVA-G (``configs/swaps/warm_start/``), both sides
warm-started from the session's trained tiny models: CLIP, projector and LM
from the tiny LLaVA-G (``trained_tiny_llava_g``), SAM head and seg projector
from the tiny GLaMM (``trained_tiny_glamm``). ``tools/train.py`` fine-tunes
the composed model 200 iterations; ``tools/test.py`` scores every synthetic
val expression (expression given in the answer, as the LLaVA-G e2e test)
for RES gIoU/cIoU and REC (boxes from the masks).

Asserted (x100): the fine-tuned swap beats the same swap untrained (random
weights) and the composed swap BEFORE fine-tuning (the parts loaded, not
yet taught to talk: GLaMM's seg projector reads LLaVA-G's ``<seg>``
states, not GLaMM's ``[SEG]`` states). Measured (seed 0; README), gIoU /
cIoU: this test in a fresh-clone ``make test`` (2 threads): untrained 2.7 /
2.7, composed 28.1 / 25.5, after 35.8 / 34.5 (REC 10.6); the same
fine-tuned 400 iterations 37.5 / 36.2. NOT asserted, because it is not
reliable: beating the trivial heuristics (every shape 34.9, largest object
35.2; named shape 54.7), which it does with a different 1000-iteration
GLaMM (42.8 / 41.3 with a one-thread LLaVA-G, 41.3 with the 2-thread one).
Margins are about half the measured gaps.

Opt-in (``MMGROUNDING_SWAP_E2E=1``): 5.4 minutes on 2 cores, which the CI
budget (the whole suite measured at 77 min in a fresh clone) cannot take
while the claim stays short of "above every heuristic".
"""
import os
from pathlib import Path
from typing import Optional

import pytest

from mmgrounding.testing import (evaluate_config, read_metrics, run_tool,
                                 train_config)

ROOT = Path(__file__).resolve().parents[2]
STEM = ('configs/swaps/warm_start/'
        'llava-g_llama-tiny_clip-tiny_sam-tiny-from-glamm_200it_synthetic')
CFG = ROOT / f'{STEM}.py'
GIVEN_CFG = ROOT / f'{STEM}-given-answer-test.py'
# gIoU points (x100), about half the measured gaps (docstring)
MARGIN_OVER_UNTRAINED = 15.0  # measured +33.1
MARGIN_OVER_COMPOSED = 3.5  # measured +7.7


def _weights(glamm_ckpt: Optional[str], llava_g_ckpt: Optional[str]) -> dict:
    """Config overrides: no weights at all (untrained) or the trained parts
    (composed; as ``--cfg-options`` also the fine-tuning's warm start)."""
    if glamm_ckpt is None:
        return {'load_from': None, 'model.grounding_head.init_cfg': None,
                'model.seg_projector.init_cfg': None}
    return {'load_from': llava_g_ckpt,
            'model.grounding_head.init_cfg.checkpoint': glamm_ckpt,
            'model.seg_projector.init_cfg.checkpoint': glamm_ckpt}


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get('MMGROUNDING_SWAP_E2E') != '1',
    reason='opt-in (MMGROUNDING_SWAP_E2E=1): 5.4 min, over the CI budget')
def test_sam_head_swap_on_llava_g_fine_tunes_from_trained_parts(
        trained_tiny_glamm, trained_tiny_llava_g, tmp_path, monkeypatch):
    root, _, llava_g_ckpt = trained_tiny_llava_g
    glamm_ckpt = trained_tiny_glamm.checkpoint
    monkeypatch.chdir(root)  # the configs read data/synthetic
    untrained = evaluate_config(GIVEN_CFG, tmp_path / 'untrained',
                                _weights(None, None))
    # init_weights applies the GLaMM parts; test() loads the LLaVA-G ones
    composed = evaluate_config(GIVEN_CFG, tmp_path / 'composed',
                               _weights(glamm_ckpt, llava_g_ckpt),
                               init_weights=True)

    work = tmp_path / 'finetune'
    ckpt = train_config(CFG, root, work,
                        [f'{key}={value}' for key, value in _weights(
                            glamm_ckpt, llava_g_ckpt).items()]).checkpoint
    run_tool([ROOT / 'tools/test.py', GIVEN_CFG, ckpt, '--work-dir',
              work / 'given'], root)
    after = read_metrics(work / 'given')
    print(f'untrained {untrained}\ncomposed {composed}\nafter {after}')
    giou = after['refseg/gIoU']
    assert giou >= untrained['refseg/gIoU'] + MARGIN_OVER_UNTRAINED
    assert giou >= composed['refseg/gIoU'] + MARGIN_OVER_COMPOSED, (
        composed, after)
    assert after['refseg/cIoU'] > composed['refseg/cIoU']
