"""``tools/dist_train.sh`` / ``tools/dist_test.sh`` unchanged on 2 CPU ranks.

The tiny demo config on a small synthetic world (``make_synthetic.py``,
seed 0, 80 images: 64 train, 8 GCG val): 2 training iterations of batch 2
per rank, then a 2-rank test run of the 8 GCG val images. On CPU
``tools/train.py`` / ``test.py`` create the gloo group and the CPU DDP
wrapper (``mmgrounding.engine.prepare_distributed``); the shell scripts and
their arguments are the GPU ones.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mmgrounding  # noqa: F401  (weights-only checkpoint globals)
from mmgrounding.testing.scripts import REPO_ROOT

sys.path.insert(0, os.path.dirname(__file__))
from test_ddp import free_port  # noqa: E402

CFG = os.path.join(REPO_ROOT, 'configs', 'glamm',
                   'glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py')


def _run(cmd, cwd, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=free_port(),
               PATH=os.path.dirname(sys.executable) + os.pathsep +
               os.environ.get('PATH', ''))
    try:
        out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f'{cmd[1]} hung (> {timeout} s)')
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    return out


@pytest.mark.slow
def test_dist_train_and_dist_test_on_two_cpu_ranks(tmp_path):
    subprocess.run([
        sys.executable,
        os.path.join(REPO_ROOT, 'tools', 'dataset_converters',
                     'make_synthetic.py'), '--out', 'data/synthetic',
        '--seed', '0', '--num-images', '80'
    ], cwd=tmp_path, check=True, capture_output=True,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    work = tmp_path / 'work'
    _run([
        'bash', os.path.join(REPO_ROOT, 'tools', 'dist_train.sh'), CFG, '2',
        '--work-dir', str(work), '--cfg-options', 'train_cfg.max_iters=2',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1'
    ], tmp_path)
    ckpt = torch.load(work / 'iter_2.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 2
    assert ckpt['rng_state']['world_size'] == 2
    logs = sorted(work.glob('*/vis_data/scalars.json'))
    records = [json.loads(x) for x in logs[-1].read_text().splitlines()]
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))

    out = _run([
        'bash', os.path.join(REPO_ROOT, 'tools', 'dist_test.sh'), CFG,
        str(work / 'iter_2.pth'), '2', '--work-dir', str(tmp_path / 'test'),
        '--cfg-options', 'test_dataloader.dataset.indices=8',
        'test_dataloader.batch_size=2', 'test_dataloader.num_workers=0'
    ], tmp_path)
    log = out.stdout + out.stderr
    # 8 images / (2 ranks x batch 2) = 2 test iterations, metrics reported
    assert re.search(r'Iter\(test\) \[2/2\]', log), log[-3000:]
    assert 'gcg/mIoU' in log
    assert Path(tmp_path / 'test').exists()
