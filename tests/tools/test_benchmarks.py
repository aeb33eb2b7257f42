"""The speed benchmarks run and check what they claim (issue 16)."""
import importlib.util
import os
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def load_tool(name):
    path = os.path.join(ROOT, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generation_benchmark_prints_every_loop_with_token_checks(
        monkeypatch, capsys):
    tool = load_tool('benchmark_generation')
    monkeypatch.setattr(sys, 'argv', [
        'x', '--batch-sizes', '1', '3', '--new-tokens', '4', '--repeats',
        '1', '--reference-samples', '1', '--static', '--prompt-words', '6'
    ])
    tool.main()
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines()
            if line.startswith(('official', 'ours', 'HF'))]
    names = {line[:40].strip() for line in rows}
    assert names == {
        'official loop (no cache)', 'ours, dynamic KV cache',
        'ours, static KV cache', 'HF generate',
        'HF generate, output_hidden_states'
    }
    assert len(rows) == 1 + 4 * 2  # official + 4 loops x 2 batch sizes
    verdicts = [line.split()[-1] for line in rows]
    assert verdicts[0] == '1/1'  # official loop == ours at batch 1
    assert set(verdicts[1:]) == {'ref', 'yes'}


def test_generation_benchmark_accepts_a_device():
    tool = load_tool('benchmark_generation')
    sys_argv = sys.argv
    try:
        sys.argv = ['x', '--device', 'cuda', '--compile']
        args = tool.parse_args()
    finally:
        sys.argv = sys_argv
    assert args.device == 'cuda' and args.compile


def test_train_step_tool_paths_and_stage_timer():
    tool = load_tool('benchmark_train_step')
    cfg = dict(a='data/synthetic/tokenizer', b=['data/synthetic/x', 'keep'],
               c=dict(d=('data/synthetic', 3)), e='other/data/synthetic')
    assert tool._replace_paths(cfg, 'data/synthetic', '/tmp/w') == dict(
        a='/tmp/w/tokenizer', b=['/tmp/w/x', 'keep'],
        c=dict(d=('/tmp/w', 3)), e='other/data/synthetic')
    timer = tool.StageTimer('cpu')
    timer.start('idle')
    timer.stop('idle')  # disabled: warm-up steps are not counted
    timer.enabled = True
    timer.start('sleep')
    time.sleep(0.05)
    timer.stop('sleep')
    timer.start('busy')
    begin = time.process_time()
    while time.process_time() - begin < 0.05:
        pass
    timer.stop('busy')
    # on a CPU the timer counts this process's CPU time: waiting is free
    assert set(timer.totals) == {'sleep', 'busy'}
    assert timer.totals['sleep'] < 0.02
    assert 0.05 <= timer.totals['busy'] < 1.0


@pytest.mark.slow
def test_train_step_benchmark_runs_on_a_small_world(tmp_path):
    tool = load_tool('benchmark_train_step')
    args = tool.parse_args(['--batch-size', '2', '--steps', '2',
                            '--warmup', '1'])
    args.data_root = None
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        root = tool.ensure_data(args)
        result = tool.run(args, root)
    finally:
        os.chdir(cwd)
    assert result['samples_per_s'] > 0
    assert 0.5 < sum(result['shares'].values()) <= 1.0 + 1e-6
    assert result['flops'] > 0
