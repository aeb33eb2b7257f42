"""Training-step throughput and where the time goes.

Runs ``--steps`` optimisation steps of a model config on its own training
data and prints samples/s (of the fastest step: the machine may be shared)
and the share of the step spent in: data loading
(dataloader ``next``), the data preprocessor, the vision encoder, the
language model, the grounding head's loss, the rest of the forward
(embedding scatter, prompt encoders, projectors, grounding-state gather)
and backward + optimiser step. Stage times come from forward hooks on the
model's parts (``vision_encoder``, ``language_model``) and a wrapper around
``grounding_head.loss``, which every ``BaseGroundedLMM`` has; each range is
also a ``torch.profiler.record_function`` (visible in ``--profile`` traces).
The FLOPs of one step are counted with ``torch.utils.flop_counter``; on a GPU
the MFU against ``--peak-tflops`` is printed::

    python tools/analysis_tools/benchmark_train_step.py \
        [--config CONFIG] [--batch-size 32] [--steps 5] [--device cuda] \
        [--baseline main~3]

``--baseline REV`` also times the ``mmgrounding`` package of git revision
REV (exported to a temporary directory, run in a subprocess with the same
arguments and data), so that the before/after figures of a change come from
one run on one machine. Without ``data/synthetic`` (the synthetic world of
the default tiny config) a small one is generated in a temporary directory.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

import torch

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

DEFAULT_CONFIG = ('configs/glamm/'
                  'glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py')
DEFAULT_DATA = 'data/synthetic'
STAGES = ('data loading', 'preprocess', 'vision', 'LLM', 'grounding head',
          'other forward', 'backward + optimizer')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--data-root', help='replaces the config\'s '
                        f'"{DEFAULT_DATA}" paths (default: {DEFAULT_DATA} if '
                        'present, else a generated small synthetic world)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--peak-tflops', type=float, default=989.,
                        help='accelerator peak for the MFU (H100/H200 bf16 '
                        'dense: 989)')
    parser.add_argument('--profile', help='write a chrome trace here')
    parser.add_argument('--baseline', help='git revision to time too')
    parser.add_argument('--rounds', type=int, default=2,
                        help='with --baseline: alternate this tree and the '
                        'baseline this many times, keep the best of each')
    parser.add_argument('--json', help=argparse.SUPPRESS)  # subprocess out
    parser.add_argument('--label', default='this tree')
    return parser.parse_args(argv)


def _replace_paths(obj, old, new):
    if isinstance(obj, str):
        return new + obj[len(old):] if obj.startswith(old) else obj
    if isinstance(obj, dict):
        return type(obj)({k: _replace_paths(v, old, new)
                          for k, v in obj.items()})
    if isinstance(obj, (list, tuple)):
        return type(obj)(_replace_paths(v, old, new) for v in obj)
    return obj


def ensure_data(args):
    """The data root: given, the default one, or a generated small world."""
    if args.data_root:
        return args.data_root
    if os.path.isdir(DEFAULT_DATA):
        return DEFAULT_DATA
    root = os.path.join(tempfile.mkdtemp(prefix='mmg_bench_'), 'synthetic')
    script = os.path.join(os.path.dirname(__file__), '..',
                          'dataset_converters', 'make_synthetic.py')
    subprocess.run([
        sys.executable, script, '--out', root, '--seed', '0',
        '--num-images', str(max(4 * args.batch_size, 64))
    ], check=True, stdout=subprocess.DEVNULL)
    return root


class StageTimer:
    """Time per stage: wall time on a GPU (synchronising at each
    boundary), this process's CPU time on a CPU (what a shared machine's
    load does not inflate: waiting for a core is not counted)."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith('cuda')
        self.totals = defaultdict(float)
        self.enabled = False
        self._open = {}

    def _now(self):
        if self.cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    def start(self, name):
        rf = torch.profiler.record_function(name)
        rf.__enter__()
        self._open[name] = (self._now(), rf)

    def stop(self, name):
        begin, rf = self._open.pop(name)
        if self.enabled:
            self.totals[name] += self._now() - begin
        rf.__exit__(None, None, None)

    def hook(self, module, name):
        module.register_forward_pre_hook(lambda *a: self.start(name))
        module.register_forward_hook(lambda *a: self.stop(name))

    def wrap(self, obj, attr, name):
        inner = getattr(obj, attr)

        def wrapped(*args, **kwargs):
            self.start(name)
            try:
                return inner(*args, **kwargs)
            finally:
                self.stop(name)

        setattr(obj, attr, wrapped)


def run(args, data_root):
    """Time the steps in this process; returns a dict of figures."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner

    from mmgrounding.registry import MODELS
    from mmgrounding.utils import register_all_modules
    register_all_modules()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = Config.fromfile(args.config)
    model_cfg = _replace_paths(cfg.model.to_dict(), DEFAULT_DATA, data_root)
    loader_cfg = _replace_paths(cfg.train_dataloader.to_dict(), DEFAULT_DATA,
                                data_root)
    loader_cfg.update(batch_size=args.batch_size, num_workers=0,
                      persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=args.seed)
    model = MODELS.build(model_cfg).to(args.device)
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)

    timer = StageTimer(args.device)
    timer.hook(model.vision_encoder, 'vision')
    timer.hook(model.language_model, 'LLM')
    if hasattr(model.language_model, 'loss_and_hidden'):  # not in old trees
        timer.wrap(model.language_model, 'loss_and_hidden', 'LLM')
    timer.wrap(model.grounding_head, 'loss', 'grounding head')
    batches = iter(loader)

    def step():
        timer.start('data loading')
        data = next(batches)
        timer.stop('data loading')
        timer.start('preprocess')
        data = model.data_preprocessor(data, True)
        timer.stop('preprocess')
        timer.start('forward')
        losses = model(**data, mode='loss')
        timer.stop('forward')
        timer.start('backward + optimizer')
        loss, _ = model.parse_losses(losses)
        optim.update_params(loss)
        timer.stop('backward + optimizer')
        return loss

    for _ in range(args.warmup):
        step()
    flops = None
    try:
        from torch.utils.flop_counter import FlopCounterMode
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        flops = counter.get_total_flops()
    except Exception as exc:  # noqa: BLE001 (the figure is optional)
        print(f'FLOP count skipped: {exc}')
    prof = None
    if args.profile:
        prof = torch.profiler.profile(record_shapes=False)
        prof.__enter__()
    timer.enabled = True
    losses, times, walls = [], [], []
    for _ in range(args.steps):
        wall, begin = time.perf_counter(), timer._now()
        losses.append(float(step().detach()))
        times.append(timer._now() - begin)
        walls.append(time.perf_counter() - wall)
    elapsed = sum(times)
    if prof is not None:
        prof.__exit__(None, None, None)
        prof.export_chrome_trace(args.profile)
    totals = dict(timer.totals)
    inner = sum(totals.get(k, 0.) for k in ('vision', 'LLM',
                                             'grounding head'))
    totals['other forward'] = totals.pop('forward', 0.) - inner
    step_s = min(walls)  # the machine may be shared: the best step
    return dict(
        label=args.label,
        samples_per_s=args.batch_size / step_s,
        step_s=step_s,
        mean_step_s=sum(walls) / args.steps,
        clock='wall' if timer.cuda else 'CPU',
        clock_step_s=min(times),
        shares={k: totals.get(k, 0.) / elapsed
                for k in STAGES},
        flops=flops,
        losses=losses,
        params=sum(p.numel() for p in model.parameters()))


def run_baseline(args, data_root, rev):
    """Export ``mmgrounding`` at ``rev`` and time it in a subprocess."""
    root = subprocess.run(['git', 'rev-parse', '--show-toplevel'],
                          check=True, capture_output=True,
                          text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ['git', '-C', root, 'archive', rev, 'mmgrounding'],
            check=True, capture_output=True).stdout
        subprocess.run(['tar', '-x', '-C', tmp], input=archive, check=True)
        out = os.path.join(tmp, 'result.json')
        argv = [sys.executable, os.path.abspath(__file__)]
        skip = {'--baseline', '--json', '--label', '--data-root',
                '--profile', '--rounds'}
        it = iter(sys.argv[1:])
        for a in it:
            if a.split('=')[0] in skip:
                if '=' not in a:
                    next(it, None)
                continue
            argv.append(a)
        argv += ['--data-root', data_root, '--json', out, '--label',
                 f'baseline {rev}']
        env = dict(os.environ, PYTHONPATH=tmp)
        subprocess.run(argv, check=True, env=env)
        with open(out) as f:
            return json.load(f)


def report(results, args):
    cuda = args.device.startswith('cuda')
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    print(f'config {args.config}, batch {args.batch_size}, {args.steps} '
          f'timed steps after {args.warmup} warm-up, {args.threads} '
          f'thread(s), device {args.device}, load average {load:.1f}')
    header = f"{'':<22}" + ''.join(f'{r["label"][:20]:>22}' for r in results)
    print(header)
    print('-' * len(header))

    def row(name, values):
        print(f'{name:<22}' + ''.join(f'{v:>22}' for v in values))

    row('samples/s (best)', [f'{r["samples_per_s"]:.2f}' for r in results])
    row('seconds/step best', [f'{r["step_s"]:.3f}' for r in results])
    row('seconds/step mean', [f'{r["mean_step_s"]:.3f}' for r in results])
    if not cuda:
        row('CPU s/step best', [f'{r["clock_step_s"]:.3f}' for r in results])
        row('samples/CPU-s (best)', [
            f'{args.batch_size / r["clock_step_s"]:.2f}' for r in results])
    print('stage shares of the ' + ('wall' if cuda else 'CPU') + ' time:')
    for stage in STAGES:
        row(stage, [f'{100 * r["shares"][stage]:.1f} %' for r in results])
    row('GFLOP/step', ['n/a' if r['flops'] is None else
                       f'{r["flops"] / 1e9:.1f}' for r in results])
    row('achieved TFLOP/s', ['n/a' if r['flops'] is None else
                             f'{r["flops"] / r["step_s"] / 1e12:.4f}'
                             for r in results])
    if cuda:
        row(f'MFU (peak {args.peak_tflops:g})', [
            'n/a' if r['flops'] is None else
            f'{100 * r["flops"] / r["step_s"] / 1e12 / args.peak_tflops:.2f}'
            ' %' for r in results])
    row('last loss', [f'{r["losses"][-1]:.4f}' for r in results])
    if len(results) > 1:
        ratio = results[0]['samples_per_s'] / results[1]['samples_per_s']
        print(f'speed-up of {results[0]["label"]} over '
              f'{results[1]["label"]}: {ratio:.2f}x wall', end='')
        if not cuda:
            cpu = results[1]['clock_step_s'] / results[0]['clock_step_s']
            print(f', {cpu:.2f}x CPU time', end='')
        print(' (same data, same seed: the losses must match)')
        for r in results[1:]:
            same = all(abs(a - b) <= 1e-5 * max(1., abs(b))
                       for a, b in zip(results[0]['losses'], r['losses']))
            print(f'losses of the timed steps, {results[0]["label"]} vs '
                  f'{r["label"]}: ' + ', '.join(
                      f'{a:.6f}/{b:.6f}' for a, b in
                      zip(results[0]['losses'], r['losses'])) +
                  (' (equal within 1e-5 relative)' if same else
                   ' (DIFFERENT)'))


def main():
    args = parse_args()
    data_root = ensure_data(args)
    if args.json:  # a baseline subprocess
        with open(args.json, 'w') as f:
            json.dump(run(args, data_root), f)
        return
    ours, base = [], []
    for _ in range(args.rounds if args.baseline else 1):
        # alternated, so that load drifting over the runs hits both
        ours.append(run(args, data_root))
        if args.baseline:
            base.append(run_baseline(args, data_root, args.baseline))
    results = [min(ours, key=lambda r: r['clock_step_s'])]
    if base:
        results.append(min(base, key=lambda r: r['clock_step_s']))
    report(results, args)


if __name__ == '__main__':
    main()
