"""Trivial baselines for open-vocabulary semantic segmentation.

Same queries (one per class present in each GT label map, from a
``SemanticSegGroundingDataset`` test config) and the same metric
(``OpenVocabSemSegMetric`` -> mmseg ``IoUMetric``) as the model, with each
query's answer replaced by a heuristic mask:

* ``nothing``: every query grounds nothing (all pixels background);
* ``whole image``: every query answers the whole image (equal scores: the
  last class asked takes every pixel);
* ``every shape``: every query answers the union of all objects of the
  image (the GT foreground: shape-blind, needs no model).

Usage: ``python tools/analysis_tools/semseg_baselines.py CONFIG``
(e.g. ``configs/glamm/glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic-
semseg-test.py``, from the repository root).
"""
import argparse
from typing import Callable, Dict

import numpy as np
import torch
from mmengine.config import Config

from mmgrounding.datasets.semantic_seg import load_label_map
from mmgrounding.registry import DATASETS, METRICS
from mmgrounding.utils import register_all_modules

Heuristic = Callable[[np.ndarray], np.ndarray]
HEURISTICS: Dict[str, Heuristic] = {
    'nothing': lambda gt: np.zeros((0, ) + gt.shape, bool),
    'whole image': lambda gt: np.ones((1, ) + gt.shape, bool),
    'every shape': lambda gt: (gt != 0)[None],
}


def evaluate_baselines(config: str) -> Dict[str, Dict[str, float]]:
    """name -> metrics of each heuristic on the config's test queries."""
    register_all_modules()
    cfg = Config.fromfile(config)
    ds_cfg = dict(cfg.test_dataloader.dataset, pipeline=[])
    dataset = DATASETS.build(ds_cfg)
    out = {}
    for name, fn in HEURISTICS.items():
        metric = METRICS.build(cfg.test_evaluator)
        metric.dataset_meta = dataset.metainfo
        samples = []
        for i in range(len(dataset)):
            rec = dataset.get_data_info(i)
            gt = load_label_map(rec['gt_seg_map_path'], rec['label_map'],
                                rec['reduce_zero_label'])
            masks = torch.from_numpy(fn(gt))
            samples.append(dict(
                rec, ori_shape=gt.shape,
                pred_instances=dict(masks=masks,
                                    scores=torch.ones(len(masks)))))
        metric.process({}, samples)
        out[name] = metric.compute_metrics(metric.results)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    args = parser.parse_args()
    for name, metrics in evaluate_baselines(args.config).items():
        print(f'{name}: ' + ', '.join(f'{k} {v:.2f}'
                                      for k, v in metrics.items()))


if __name__ == '__main__':
    main()
