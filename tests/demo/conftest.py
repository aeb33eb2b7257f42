"""Fixtures of the demo tests: a tiny synthetic world and a tiny GLaMM
checkpoint (see demo_helpers.py)."""
from pathlib import Path

import pytest
import torch
from demo_helpers import TINY, rewire_to_cycle
from mmengine.config import Config

from mmgrounding.datasets.synthetic import generate_world


@pytest.fixture(scope='session')
def demo_world(tmp_path_factory) -> Path:
    """A directory holding ``data/synthetic`` (8 images, tokenizer)."""
    root = tmp_path_factory.mktemp('web_demo_world')
    generate_world(str(root / 'data' / 'synthetic'), num_images=8, seed=1)
    return root


@pytest.fixture(scope='session')
def cycle_checkpoint(demo_world) -> Path:
    """An mmengine checkpoint of the rewired tiny GLaMM (random otherwise)."""
    from mmgrounding.apis import GroundingInferencer
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(demo_world)  # the config's relative tokenizer path
        torch.manual_seed(0)
        with pytest.warns(UserWarning, match='randomly initialized'):
            inf = GroundingInferencer(Config.fromfile(str(TINY)),
                                      weights=None)
        rewire_to_cycle(inf.model)
        path = demo_world / 'cycle_glamm.pth'
        torch.save(dict(state_dict=inf.model.state_dict(), meta=dict()),
                   path)
    return path
