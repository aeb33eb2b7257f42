"""Shared slow fixtures: the synthetic world and the tiny LLaVA-G stage-2
run, trained ONCE per session and read by the stage-2 e2e test and the
stage-3 e2e test (which starts from that checkpoint, as the recipe does)."""
from pathlib import Path
from typing import NamedTuple

import pytest

from mmgrounding.datasets.synthetic import generate_world
from mmgrounding.testing import run_tool

ROOT = Path(__file__).resolve().parents[2]
LLAVA_G_STEM = ('configs/llava_grounding/'
                'llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic')


class TrainedRun(NamedTuple):
    root: Path  # cwd of the run: holds data/synthetic
    work_dir: Path
    checkpoint: str


@pytest.fixture(scope='session')
def synthetic_world_root(tmp_path_factory) -> Path:
    """A directory holding the default synthetic world (seed 0) under
    ``data/synthetic``, the layout every tiny config reads."""
    root = tmp_path_factory.mktemp('world')
    generate_world(str(root / 'data' / 'synthetic'), seed=0)
    return root


@pytest.fixture(scope='session')
def trained_tiny_llava_g(synthetic_world_root) -> TrainedRun:
    """The tiny LLaVA-G config trained by tools/train.py (what `make demo`
    trains)."""
    work = synthetic_world_root / 'llava_g_stage2'
    run_tool([ROOT / 'tools/train.py', ROOT / f'{LLAVA_G_STEM}.py',
              '--work-dir', work], synthetic_world_root)
    ckpt = (work / 'last_checkpoint').read_text().strip()
    return TrainedRun(synthetic_world_root, work, ckpt)
