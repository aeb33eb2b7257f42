"""Load official GLaMM GCG predictions and GT into :class:`GCGMetric` records.

Official layout (``eval/gcg``):

* predictions: a folder with one ``<image_id>.json`` per image, holding
  ``{"image_id", "caption", "phrases", "pred_masks": [RLE]}`` (or the same
  nested under one key);
* GT: ``<split>_gcg_coco_mask_gt.json`` (COCO instances, compressed RLE
  segmentations) and ``<split>_gcg_coco_caption_gt.json`` (COCO captions
  whose annotations carry ``labels``, the phrase of each mask).

The evaluated images are the caption-GT ``images`` in file order; an image's
GT masks are its mask-GT annotations in file order, its GT phrases the
``labels`` of its first caption annotation, and its references every caption
annotation. The records feed ``GCGMetric.compute_metrics`` directly.
"""
import json
import os.path as osp
from collections import defaultdict
from typing import Any, Dict, List

from pycocotools import mask as mask_utils


def _read_json(path: str) -> Any:
    if not osp.isfile(path):
        raise FileNotFoundError(f'GCG file not found: {path}')
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _prediction(path: str) -> Dict[str, Any]:
    """Flat record, or the value of the first key when that holds it."""
    data = _read_json(path)
    if not isinstance(data, dict) or not data:
        raise ValueError(f'{path}: expected a JSON object')
    first = next(iter(data.values()))
    if isinstance(first, dict) and 'caption' in first:
        data = first
    # the official evaluate.py reads all three unconditionally (a file
    # without `pred_masks` is a KeyError there, not "no masks")
    for key in ('caption', 'phrases', 'pred_masks'):
        if key not in data:
            raise KeyError(f'{path}: missing field "{key}"')
    if not isinstance(data['pred_masks'], list):
        raise ValueError(f'{path}: field "pred_masks" must be a list of '
                         f'COCO RLEs, got {type(data["pred_masks"]).__name__}')
    return data


def _compressed(rle: Dict[str, Any], where: str) -> Dict[str, Any]:
    if not isinstance(rle, dict) or 'counts' not in rle or 'size' not in rle:
        raise ValueError(f'{where}: segmentation must be a COCO RLE dict')
    if isinstance(rle['counts'], list):
        rle = mask_utils.frPyObjects(rle, *rle['size'])
    return dict(size=list(rle['size']), counts=rle['counts'])


def load_official_gcg(pred_dir: str,
                      gt_dir: str,
                      split: str = 'val',
                      missing: str = 'error') -> List[Dict[str, Any]]:
    """Build GCG records from official prediction and GT files.

    Args:
        pred_dir: folder of per-image prediction JSON files.
        gt_dir: folder with ``<split>_gcg_coco_{mask,caption}_gt.json``.
        split: ``'val'`` or ``'test'``.
        missing: ``'error'`` (as the official script, which crashes) or
            ``'empty'`` (score a missing prediction as empty caption, no
            masks).

    Returns:
        list[dict]: one ``GCGMetric`` record per caption-GT image.
    """
    if missing not in ('error', 'empty'):
        raise ValueError(f'missing must be error or empty, got {missing}')
    mask_path = osp.join(gt_dir, f'{split}_gcg_coco_mask_gt.json')
    cap_path = osp.join(gt_dir, f'{split}_gcg_coco_caption_gt.json')
    mask_gt, cap_gt = _read_json(mask_path), _read_json(cap_path)
    sizes = {
        img['id']: (int(img['height']), int(img['width']))
        for img in mask_gt.get('images', [])
    }
    gt_masks = defaultdict(list)
    for ann in mask_gt.get('annotations', []):
        if 'segmentation' in ann:
            gt_masks[ann['image_id']].append(
                _compressed(ann['segmentation'],
                            f'{mask_path} annotation {ann.get("id")}'))
    captions = defaultdict(list)
    for ann in cap_gt.get('annotations', []):
        captions[ann['image_id']].append(ann)

    records = []
    for img in cap_gt.get('images', []):
        img_id = img['id']
        if not captions[img_id]:
            raise ValueError(f'{cap_path}: image {img_id!r} has no caption '
                             'annotation')
        if img_id not in sizes:
            raise KeyError(f'{mask_path}: image {img_id!r} of the caption GT '
                           'is missing (height/width needed)')
        path = osp.join(pred_dir, f'{img_id}.json')
        if osp.isfile(path) or missing == 'error':
            pred = _prediction(path)
        else:
            pred = dict(caption='', phrases=[], pred_masks=[])
        pred_rles = [
            _compressed(r, f'{path} pred_masks[{i}]')
            for i, r in enumerate(pred['pred_masks'])
        ]
        height, width = sizes[img_id]
        for rle in pred_rles:
            if tuple(rle['size']) != (height, width):
                raise ValueError(f'{path}: mask size {rle["size"]} differs '
                                 f'from the GT image size {[height, width]}')
        records.append(
            dict(
                img_id=img_id,
                height=height,
                width=width,
                caption=str(pred['caption']),
                references=[str(a['caption']) for a in captions[img_id]],
                pred_phrases=[str(p) for p in pred['phrases']],
                gt_phrases=[
                    str(p) for p in captions[img_id][0].get('labels', [])
                ],
                pred_rles=pred_rles,
                gt_rles=gt_masks[img_id]))
    if not records:
        raise ValueError(f'{cap_path}: no images to evaluate')
    return records
