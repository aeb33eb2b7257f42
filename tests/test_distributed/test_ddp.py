"""2-process gloo DDP through mmengine's ``Runner`` equals 1 process.

``ddp_worker.py`` runs one SGD(lr=1) step per case on 2 torchrun ranks; the
references run here on 1 process with the same Runner config. Why the
references are what they are:

* per rank the losses are means (token-mean CE, mask losses divided by the
  number of masks); DDP averages gradients over ranks. With equal token and
  mask counts per rank, the mean of the two rank means is the mean over the
  doubled batch, so DDP must equal 1 process on the doubled batch
  (``equal``);
* with unequal counts (``mixed``: grounding tokens on one rank only) the
  DDP gradient is by definition the average of the per-rank gradients,
  i.e. the mean of two 1-process single-batch gradients; it must neither
  hang (parts unused on one rank) nor differ from that.

A 300 s timeout on the launch turns a hang into a failure.
"""
import os
import socket
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
import ddp_worker  # noqa: E402

from mmgrounding.testing.scripts import REPO_ROOT  # noqa: E402

TOL = dict(rtol=0, atol=2e-6)


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def torchrun(args, cwd, timeout=300, env=None):
    """Run ``torch.distributed.run --nproc_per_node 2 args``; fail on error
    or hang."""
    env = dict(os.environ, **(env or {}))
    env.update(OMP_NUM_THREADS='1', PYTHONPATH=REPO_ROOT + os.pathsep +
               env.get('PYTHONPATH', ''))
    cmd = [
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
        '2', '--master_addr', '127.0.0.1', '--master_port', free_port()
    ] + [str(a) for a in args]
    try:
        out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f'2-process run hung (> {timeout} s): '
                    f'{(err.stderr or b"")[-3000:]}')
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-4000:])
    return out


def _assert_weights_close(got, expected):
    assert got.keys() == expected.keys()
    worst = 0.
    for key, value in got.items():
        torch.testing.assert_close(value, expected[key], **TOL, msg=key)
        worst = max(worst, (value - expected[key]).abs().max().item())
    return worst


@pytest.fixture(scope='module')
def ddp_run(dist_launch_a):
    out = dist_launch_a / 'ddp'  # ddp_worker's part of the shared launch
    data = ddp_worker.batches(str(out / 'tok'))
    results = {
        f'{case}_rank{r}': torch.load(out / f'{case}_rank{r}.pt',
                                      weights_only=True)
        for case in ('equal', 'mixed') for r in (0, 1)
    }
    return out, data, results


@pytest.mark.slow
def test_ddp_equals_one_process_on_the_doubled_batch(ddp_run, tmp_path):
    out, data, res = ddp_run
    r0, r1 = res['equal_rank0'], res['equal_rank1']
    losses, before, after = ddp_worker.one_step(
        str(out / 'tok'), [data['equal_full']], str(tmp_path), 'ref_equal')
    # same initial weights on both ranks and in the reference
    for key, value in before.items():
        assert torch.equal(r0['before'][key], value), key
    # the per-rank losses are different batches; their mean is the loss of
    # the doubled batch (equal counts => mean of means = mean)
    assert r0['losses'][0]['loss'] != r1['losses'][0]['loss']
    for name, value in losses[0].items():
        if name.startswith('loss'):
            mean = (r0['losses'][0][name] + r1['losses'][0][name]) / 2
            assert abs(mean - value) <= 1e-6 * max(1., abs(value)), name
    # after one SGD(lr=1) step: DDP-averaged gradients == doubled batch
    worst = _assert_weights_close(r0['after'], after)
    _assert_weights_close(r1['after'], r0['after'])
    moved = [k for k in after if not torch.equal(after[k], before[k])]
    assert any('lora_' in k for k in moved)
    assert any(k.startswith('grounding_head.') for k in moved)
    assert any(k.startswith('region_encoder.') for k in moved)
    print(f'equal: max |w_ddp - w_1proc| = {worst:.3g}')


@pytest.mark.slow
def test_ddp_with_grounding_tokens_on_one_rank_only(ddp_run, tmp_path):
    out, data, res = ddp_run
    r0, r1 = res['mixed_rank0'], res['mixed_rank1']
    tok = str(out / 'tok')
    _, before, after_a = ddp_worker.one_step(tok, [data['mixed'][0]],
                                             str(tmp_path / 'a'), 'ref_a')
    _, _, after_b = ddp_worker.one_step(tok, [data['mixed'][1]],
                                        str(tmp_path / 'b'), 'ref_b')
    # DDP gradient = (g_A + g_B) / 2  =>  w = (w_A + w_B) / 2 after SGD(lr=1)
    expected = {k: (after_a[k] + after_b[k]) / 2 for k in after_a}
    worst = _assert_weights_close(r0['after'], expected)
    _assert_weights_close(r1['after'], r0['after'])
    # rank 1 alone leaves the grounding parts where they were, rank 0 moves
    # them: DDP halves rank 0's step there
    seg = [k for k in before if k.startswith('grounding_head.')
           and not torch.equal(after_a[k], before[k])]
    assert seg
    for key in seg:
        assert torch.equal(after_b[key], before[key]), key
    print(f'mixed: max |w_ddp - (w_A + w_B)/2| = {worst:.3g}')
