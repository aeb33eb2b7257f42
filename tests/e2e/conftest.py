"""The tiny LLaVA-G stage-2 run, trained ONCE per session and read by the
stage-2 e2e test and the stage-3 e2e test (which starts from that
checkpoint, as the recipe does). The world fixture is in tests/conftest.py.
"""
from pathlib import Path

import pytest

from mmgrounding.testing import TrainedRun, train_config

ROOT = Path(__file__).resolve().parents[2]
LLAVA_G_CFG = ROOT / ('configs/llava_grounding/'
                      'llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_'
                      'synthetic.py')


@pytest.fixture(scope='session')
def trained_tiny_llava_g(synthetic_world_root) -> TrainedRun:
    """The tiny LLaVA-G config trained by tools/train.py (what `make demo`
    trains)."""
    return train_config(LLAVA_G_CFG, synthetic_world_root,
                        synthetic_world_root / 'llava_g_stage2')
