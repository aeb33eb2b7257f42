"""Time a dataset's loading pipeline, transform by transform.

Prints a table with, for each transform of ``<split>_dataloader.dataset``'s
pipeline, the mean time per sample and the samples/s it alone would allow,
then the whole pipeline (``dataset[i]``: record fetch + all transforms).
Runs in this process (no workers), so the numbers are per CPU core.

Usage:
    python tools/analysis_tools/benchmark_pipeline.py CONFIG [--num 50] \
        [--split train | --dataset-key NAME] [--warmup 3]

``--dataset-key`` picks a dataset dict of the config by name, as in
browse_dataset.py (e.g. ``configs/_base_/datasets/synthetic_sources.py
--dataset-key gvc_llava_g``).
"""
import argparse
import copy
import sys
import time
from collections import OrderedDict

from mmengine.config import Config, DictAction
from mmengine.utils import ProgressBar


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark a pipeline')
    parser.add_argument('config', help='config file')
    parser.add_argument('--num', type=int, default=50, help='samples timed')
    parser.add_argument('--warmup', type=int, default=3,
                        help='samples run first and not timed')
    parser.add_argument('--split', default='train',
                        choices=['train', 'val', 'test'])
    parser.add_argument('--dataset-key', default=None,
                        help='benchmark the dataset dict cfg.<KEY> instead '
                        '(dotted path); overrides --split')
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


def spread(num: int, size: int) -> list:
    """``num`` indices spread evenly over ``range(size)`` (cycling when
    ``num > size``), so that every source of a concatenated dataset and
    records from its whole length are timed, not only its first records."""
    if size < 1:
        raise ValueError('the dataset is empty')
    return [(k * size) // num % size if num <= size else k % size
            for k in range(num)]


def time_transforms(dataset, num: int, warmup: int) -> OrderedDict:
    """Seconds spent in each transform over ``num`` samples of one
    dataset (keys: ``'<idx>:<TransformName>'``)."""
    totals = OrderedDict()
    transforms = list(getattr(dataset.pipeline, 'transforms', []))
    for k, t in enumerate(transforms):
        totals[f'{k}:{type(t).__name__}'] = 0.0
    indices = spread(num + warmup, len(dataset))
    bar = ProgressBar(len(indices), file=sys.stderr)  # stdout: the table
    for i, idx in enumerate(indices):
        bar.update()  # outside the timed transforms
        results = copy.deepcopy(dataset.get_data_info(idx))
        for k, t in enumerate(transforms):
            start = time.perf_counter()
            results = t(results)
            if i >= warmup:
                totals[f'{k}:{type(t).__name__}'] += \
                    time.perf_counter() - start
            if results is None:
                break
    sys.stderr.write('\n')
    return totals, num


def main():
    args = parse_args()
    import torch
    torch.set_num_threads(1)
    from browse_dataset import build_dataset  # same folder
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    dataset = build_dataset(cfg, args.split, args.dataset_key)
    rows = []
    for d in leaf_datasets(dataset):
        totals, n = time_transforms(d, args.num, args.warmup)
        name = type(d).__name__
        for key, sec in totals.items():
            rows.append((name, key, sec, n))
    # whole pipeline through the (possibly concatenated) dataset
    indices = spread(args.warmup + args.num, len(dataset))
    for idx in indices[:args.warmup]:
        dataset[idx]
    bar = ProgressBar(args.num, file=sys.stderr)
    start = time.perf_counter()
    for idx in indices[args.warmup:]:
        dataset[idx]
        bar.update()  # microseconds next to a whole pipeline run
    total = time.perf_counter() - start
    sys.stderr.write('\n')
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
