"""Run or import repository scripts (tools/, demo/) from tests."""
import glob
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import NamedTuple, Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_script(relative_path: str) -> ModuleType:
    """Execute ``REPO_ROOT/relative_path`` and return it as a module.

    Scripts under ``tools/`` and ``demo/`` are not packages; tests call their
    functions (``main``, ``evaluate_baselines`` ...) through this loader.
    """
    path = osp.join(REPO_ROOT, relative_path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no script at {path}')
    name = '_script_' + osp.splitext(relative_path)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(args: Sequence, cwd: str, timeout: int = 2400,
             env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Run a repository script (``tools/train.py`` ...) in a fresh
    interpreter with the repository importable and the hub offline; a
    non-zero exit fails with the end of its output."""
    full_env = dict(os.environ, PYTHONPATH=REPO_ROOT, HF_HUB_OFFLINE='1')
    full_env.update(env or {})
    out = subprocess.run([sys.executable] + [str(a) for a in args],
                         cwd=str(cwd), env=full_env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def read_metrics(work_dir: str) -> dict:
    """The metrics json ``tools/test.py --work-dir work_dir`` wrote (the
    newest run)."""
    files = glob.glob(osp.join(str(work_dir), '*', '*.json'))
    assert files, f'no metrics json under {work_dir}'
    with open(sorted(files)[-1]) as f:
        return json.load(f)


class TrainedRun(NamedTuple):
    """A ``tools/train.py`` run: its cwd (holding ``data/synthetic``), work
    dir and last checkpoint."""
    root: Path
    work_dir: Path
    checkpoint: str


def evaluate_config(config: str, work_dir: str,
                    cfg_options: Optional[dict] = None,
                    init_weights: bool = False) -> dict:
    """``Runner.test()`` of ``config`` in this process, data loaded in the
    main process; the metrics dict.

    Without checkpoint options this scores the model as built (random
    weights: the "untrained" rows of the e2e tests). ``cfg_options`` are
    merged as by ``--cfg-options`` (``load_from``, an ``init_cfg``);
    ``init_weights`` runs the model's ``init_weights`` first, which is what
    applies ``Pretrained`` ``init_cfg`` entries (``test()`` itself only
    reads ``load_from``).
    """
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = str(work_dir)
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    runner = Runner.from_cfg(cfg)
    if init_weights:
        runner.model.init_weights()
    return runner.test()


def train_config(config: str, cwd: str, work_dir: str,
                 cfg_options: Sequence[str] = ()) -> TrainedRun:
    """``tools/train.py config --work-dir work_dir [--cfg-options ...]`` run
    in ``cwd``."""
    options = ['--cfg-options', *cfg_options] if cfg_options else []
    run_tool([osp.join(REPO_ROOT, 'tools', 'train.py'), config,
              '--work-dir', work_dir, *options], cwd)
    with open(osp.join(str(work_dir), 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    return TrainedRun(Path(cwd), Path(work_dir), checkpoint)
