"""Test-wide settings: offline hub, one thread per process, fixed seeds;
and the slow suite's shared trainings (the synthetic world and the tiny
GLaMM trained ONCE per session, read by the GLaMM e2e test and by the
pseudo-label project's e2e test)."""
import os
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


ROOT = Path(__file__).resolve().parents[1]
GLAMM_CFG = ROOT / ('configs/glamm/'
                    'glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py')


@pytest.fixture(scope='session')
def synthetic_world_root(tmp_path_factory) -> Path:
    """A directory holding the default synthetic world (seed 0) under
    ``data/synthetic``, the layout every tiny config reads."""
    from mmgrounding.datasets.synthetic import generate_world
    root = tmp_path_factory.mktemp('world')
    generate_world(str(root / 'data' / 'synthetic'), seed=0)
    return root


@pytest.fixture(scope='session')
def trained_tiny_glamm(synthetic_world_root):
    """The tiny GLaMM config trained by tools/train.py on the default world
    (what `make demo` trains): a ``mmgrounding.testing.TrainedRun``."""
    from mmgrounding.testing import train_config
    return train_config(GLAMM_CFG, synthetic_world_root,
                        synthetic_world_root / 'glamm')
