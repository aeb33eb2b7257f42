"""Score saved predictions offline.

Two modes:

1. ``python tools/analysis_tools/eval_metric.py CONFIG PREDS.pkl``: re-run
   the config's ``test_evaluator`` on the data samples that
   ``tools/test.py --out PREDS.pkl`` dumped (mmengine ``DumpResults``: a list
   of dicts with predictions and GT). The pickle is read with a restricted
   unpickler (``mmgrounding.evaluation.load_prediction_pickle``): only
   builtins, numpy, CPU torch tensors and mmengine/mmdet data structures
   are rebuilt, any other global (e.g. ``os.system`` behind a
   ``__reduce__``) is refused before it can run, so a ``.pkl`` from
   elsewhere cannot execute code. The format is ``DumpResults``' own, so
   existing dumps load unchanged.
2. ``python tools/analysis_tools/eval_metric.py [CONFIG] --official-gcg-dir
   PRED_DIR --gt-dir GT_DIR --split val``: score official GLaMM GCG
   prediction files (one ``<image_id>.json`` per image) against the official
   ``<split>_gcg_coco_{mask,caption}_gt.json``. The ``GCGMetric`` settings
   (text encoder, quirks) come from the config's ``test_evaluator`` when a
   config is given, else the defaults.
"""
import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import mmengine  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.evaluator import Evaluator  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate dumped predictions with a config evaluator, '
        'or official GLaMM GCG prediction files.')
    parser.add_argument('config', nargs='?', help='config file')
    parser.add_argument('pkl_results', nargs='?', help='dumped predictions')
    parser.add_argument(
        '--official-gcg-dir',
        help='folder of official GCG prediction JSON files')
    parser.add_argument(
        '--gt-dir', help='folder with <split>_gcg_coco_*_gt.json')
    parser.add_argument('--split', default='val', choices=['val', 'test'])
    parser.add_argument(
        '--missing',
        default='error',
        choices=['error', 'empty'],
        help='what a missing prediction file means (official: error)')
    parser.add_argument(
        '--chunk-size', type=int, default=64, help='samples per process()')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.official_gcg_dir:
        if not args.gt_dir:
            parser.error('--official-gcg-dir needs --gt-dir')
    elif not (args.config and args.pkl_results):
        parser.error('give CONFIG and PREDS.pkl, or --official-gcg-dir')
    return args


def _evaluator_cfgs(cfg: Config) -> List[Dict[str, Any]]:
    evaluator = cfg.get('test_evaluator')
    if evaluator is None:
        raise KeyError('the config has no test_evaluator')
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    return list(evaluator) if isinstance(evaluator, (list, tuple)) else [
        evaluator
    ]


def _gcg_metric_cfg(cfg: Optional[Config]) -> Dict[str, Any]:
    if cfg is not None:
        for metric in _evaluator_cfgs(cfg):
            if str(metric.get('type', '')).split('.')[-1] == 'GCGMetric':
                return dict(metric)
    return dict(type='GCGMetric')


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    from mmgrounding.utils.setup_env import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = None
    if args.config:
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
    init_default_scope(
        cfg.get('default_scope', 'mmgrounding') if cfg else 'mmgrounding')

    if args.official_gcg_dir:
        from mmgrounding.evaluation import load_official_gcg
        from mmgrounding.registry import METRICS
        metric = METRICS.build(_gcg_metric_cfg(cfg))
        records = load_official_gcg(
            args.official_gcg_dir,
            args.gt_dir,
            split=args.split,
            missing=args.missing)
        print_log(
            f'loaded {len(records)} official GCG predictions from '
            f'{args.official_gcg_dir}',
            logger='current')
        metrics = metric.compute_metrics(records)
        if metric.prefix:
            metrics = {f'{metric.prefix}/{k}': v for k, v in metrics.items()}
    else:
        from mmgrounding.evaluation import load_prediction_pickle
        if not args.pkl_results.endswith(('.pkl', '.pickle')):
            raise ValueError(f'{args.pkl_results}: expected a .pkl/.pickle '
                             'file written by tools/test.py --out')
        predictions = load_prediction_pickle(args.pkl_results)
        if not isinstance(predictions, (list, tuple)) or not predictions:
            raise ValueError(f'{args.pkl_results}: expected a non-empty list '
                             'of data samples (tools/test.py --out)')
        evaluator = Evaluator(_evaluator_cfgs(cfg))
        # Evaluator.offline_evaluate's loop (process chunk by chunk, then
        # evaluate), with a progress bar
        bar = ProgressBar(len(predictions), file=sys.stderr)
        for start in range(0, len(predictions), args.chunk_size):
            chunk = list(predictions[start:start + args.chunk_size])
            evaluator.process(chunk, None)
            bar.update(len(chunk))
        sys.stderr.write('\n')
        metrics = evaluator.evaluate(len(predictions))
    print_log(json.dumps(metrics, indent=1), logger='current')
    if args.out:
        mmengine.dump(metrics, args.out)
    return metrics


if __name__ == '__main__':
    main(sys.argv[1:])
