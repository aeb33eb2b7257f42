"""Time a dataset's loading pipeline, transform by transform.

Prints a table with, for each transform of ``<split>_dataloader.dataset``'s
pipeline, the mean time per sample and the samples/s it alone would allow,
then the whole pipeline (``dataset[i]``: record fetch + all transforms).
Runs in this process (no workers), so the numbers are per CPU core.

Usage:
    python tools/analysis_tools/benchmark_pipeline.py CONFIG [--num 50] \
        [--split train] [--warmup 3]
"""
import argparse
import copy
import time
from collections import OrderedDict

from mmengine.config import Config, DictAction


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark a pipeline')
    parser.add_argument('config', help='config file')
    parser.add_argument('--num', type=int, default=50, help='samples timed')
    parser.add_argument('--warmup', type=int, default=3,
                        help='samples run first and not timed')
    parser.add_argument('--split', default='train',
                        choices=['train', 'val', 'test'])
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def leaf_datasets(dataset):
    """Datasets holding a pipeline (ConcatDataset / wrappers unpacked)."""
    if hasattr(dataset, 'datasets'):
        for d in dataset.datasets:
            yield from leaf_datasets(d)
    elif hasattr(dataset, 'dataset'):
        yield from leaf_datasets(dataset.dataset)
    else:
        yield dataset


def time_transforms(dataset, num: int, warmup: int) -> OrderedDict:
    """Seconds spent in each transform over ``num`` samples of one
    dataset (keys: ``'<idx>:<TransformName>'``)."""
    totals = OrderedDict()
    transforms = list(getattr(dataset.pipeline, 'transforms', []))
    for k, t in enumerate(transforms):
        totals[f'{k}:{type(t).__name__}'] = 0.0
    n = num + warmup  # indices cycle over small datasets
    for i in range(n):
        results = copy.deepcopy(dataset.get_data_info(i % len(dataset)))
        for k, t in enumerate(transforms):
            start = time.perf_counter()
            results = t(results)
            if i >= warmup:
                totals[f'{k}:{type(t).__name__}'] += \
                    time.perf_counter() - start
            if results is None:
                break
    return totals, num


def main():
    args = parse_args()
    import torch
    torch.set_num_threads(1)
    from browse_dataset import build_dataset  # same folder
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    dataset = build_dataset(cfg, args.split)
    rows = []
    for d in leaf_datasets(dataset):
        totals, n = time_transforms(d, args.num, args.warmup)
        name = type(d).__name__
        for key, sec in totals.items():
            rows.append((name, key, sec, n))
    # whole pipeline through the (possibly concatenated) dataset
    size = len(dataset)
    for i in range(args.warmup):
        dataset[i % size]
    start = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.num):
        dataset[i % size]
    total = time.perf_counter() - start
    timed = args.num

    header = f'{"dataset":<28}{"transform":<36}{"ms/sample":>11}' \
        f'{"samples/s":>11}'
    print(header)
    print('-' * len(header))
    for name, key, sec, cnt in rows:
        ms = 1000 * sec / cnt if cnt else float('nan')
        rate = cnt / sec if sec > 0 else float('inf')
        print(f'{name:<28}{key:<36}{ms:>11.2f}{rate:>11.1f}')
    print('-' * len(header))
    ms = 1000 * total / timed if timed else float('nan')
    rate = timed / total if total > 0 else float('inf')
    print(f'{"whole pipeline":<28}{f"dataset[i] x {timed}":<36}{ms:>11.2f}'
          f'{rate:>11.1f}')


if __name__ == '__main__':
    import os.path as osp
    import sys
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    main()
