"""The two torchrun launches the slow distributed tests share
(``dist_worker.py``): ``dist_launch_a`` runs the DDP cases and the
uninterrupted and cut FSDP and DeepSpeed runs, ``dist_launch_b`` (fresh
processes, as a real ``--resume``) resumes both and trains ZeRO-3. DeepSpeed
parts run only where deepspeed imports; ``test_deepspeed.py`` fails (not
skips) there, so CI cannot pass without them."""
import importlib.util
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_ddp import torchrun  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), 'dist_worker.py')
HAS_DEEPSPEED = importlib.util.find_spec('deepspeed') is not None


@pytest.fixture(scope='session')
def dist_launch_a(tmp_path_factory):
    from mmgrounding.testing import build_tiny_tokenizer
    out = tmp_path_factory.mktemp('dist')
    build_tiny_tokenizer(str(out / 'tok'))
    parts = ['ddp', 'fsdp:straight,cut'] + (
        ['ds:straight,cut'] if HAS_DEEPSPEED else [])
    torchrun([WORKER, out] + parts, cwd=str(out), timeout=600)
    return out


@pytest.fixture(scope='session')
def dist_launch_b(dist_launch_a):
    out = dist_launch_a
    parts = ['fsdp:resume'] + (['ds:resume,zero3'] if HAS_DEEPSPEED else [])
    torchrun([WORKER, out] + parts, cwd=str(out), timeout=600)
    return out
