"""Heuristic referring baselines (RES and REC) on the synthetic world.

A model has learned only where it beats these (not just the untrained
model). Every baseline is scored with the same official gIoU/cIoU code as the
models (``mmgrounding.evaluation.functional.refseg``), one row per heuristic:

* every shape: the union of all objects of the image (trivial foreground);
* largest object: the biggest visible object;
* named colour: every object whose colour word is in the expression;
* named shape: every object whose shape word is in the expression.

Each row also gives REC Acc@0.5: the tight box of the heuristic's mask
against the box of the referent's mask (``bbox_overlaps``, as
``RECAccMetric`` scores a model's top box); an empty prediction is a miss.

Usage: ``python tools/analysis_tools/synthetic_baselines.py data/synthetic
[--split val]``
"""
import argparse
import os.path as osp
import pickle
import sys
from typing import Callable, Dict, List

import numpy as np
from mmengine.utils import ProgressBar
from pycocotools.coco import COCO

from mmgrounding.evaluation.functional.refseg import (intersection_union,
                                                      refseg_scores)


def _objects(coco: COCO, image_id: int) -> List[dict]:
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
    for ann in anns:
        ann['_mask'] = coco.annToMask(ann).astype(bool)
    return anns


def _union(anns: List[dict], shape) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for ann in anns:
        out |= ann['_mask']
    return out


def _mask_box(mask: np.ndarray) -> np.ndarray:
    """[1, 4] xyxy box of a mask's pixels ([0, 4] when empty), the same
    convention as ``PackGroundingInputs`` (x2 = last column + 1)."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return np.zeros((0, 4), dtype=np.float32)
    return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]],
                    dtype=np.float32)


def _box_hit(pred: np.ndarray, gt: np.ndarray, thr: float = 0.5) -> bool:
    from mmdet.evaluation.functional import bbox_overlaps
    pbox, gbox = _mask_box(pred), _mask_box(gt)
    return bool(len(pbox) and bbox_overlaps(pbox, gbox)[0, 0] >= thr)


def _mentions(word_key: str) -> Callable:

    def predict(anns, sentence, shape):
        words = set(sentence.lower().replace(',', ' ').split())
        hits = [a for a in anns if a['attributes'][word_key] in words]
        return _union(hits, shape)

    return predict


BASELINES: Dict[str, Callable] = {
    'every shape': lambda anns, s, shape: _union(anns, shape),
    'largest object': lambda anns, s, shape: max(
        anns, key=lambda a: a['_mask'].sum())['_mask'],
    'named colour': _mentions('color'),
    'named shape': _mentions('shape'),
}


def evaluate_baselines(data_root: str, split: str = 'val') -> Dict[str, dict]:
    """Return {baseline: refseg_scores(...)} over every expression of split."""
    coco = COCO(osp.join(data_root, 'annotations', 'instances.json'))
    with open(osp.join(data_root, 'annotations', 'refs(unc).p'), 'rb') as f:
        refs = [r for r in pickle.load(f) if r['split'] == split]
    if not refs:
        raise ValueError(f'no refs with split {split!r} in {data_root}')
    counts = {name: ([], []) for name in BASELINES}
    hits = {name: [] for name in BASELINES}
    cache = {}
    bar = ProgressBar(len(refs), file=sys.stderr)  # stdout: the table
    for ref in refs:
        bar.update()
        image_id = ref['image_id']
        if image_id not in cache:
            cache = {image_id: _objects(coco, image_id)}
        anns = cache[image_id]
        gt = next(a for a in anns if a['id'] == ref['ann_id'])['_mask']
        for sent in ref['sentences']:
            for name, predict in BASELINES.items():
                pred = predict(anns, sent['sent'], gt.shape)
                i, u = intersection_union(pred, gt)
                counts[name][0].append(i)
                counts[name][1].append(u)
                hits[name].append(_box_hit(pred, gt))
    sys.stderr.write('\n')
    scores = {name: refseg_scores(*iu) for name, iu in counts.items()}
    for name in scores:
        scores[name]['rec_acc'] = float(np.mean(hits[name]))
    return scores


def format_table(scores: Dict[str, dict]) -> str:
    """Markdown table, scores x 100 like the metrics' own tables."""
    rows = ['| baseline | gIoU | cIoU | REC Acc@0.5 | expressions |',
            '|---|---|---|---|---|']
    for name, s in scores.items():
        rows.append(f"| {name} | {100 * s['gIoU']:.2f} | "
                    f"{100 * s['cIoU']:.2f} | {100 * s['rec_acc']:.2f} | "
                    f"{s['num_expressions']} |")
    return '\n'.join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root', help='synthetic world directory')
    parser.add_argument('--split', default='val')
    args = parser.parse_args()
    print(format_table(evaluate_baselines(args.data_root, args.split)))


if __name__ == '__main__':
    main()
