"""COCO results json (``CocoMetric`` output) -> COCO instances training file.

``PseudoLabelCocoMetric`` writes GLaMM's pseudo-labels in the COCO *results*
format (``<prefix>.segm.json``: image_id, category_id, bbox xywh, score,
RLE segmentation; ``<prefix>.bbox.json`` without masks). mmdet's
``CocoDataset`` trains on the *instances* format: this keeps the results
with ``score >= score_thr`` (and boxes at least 1 px wide and high) as
annotations of the images and categories of ``--images`` (the COCO file
the predictions were made on; its own annotations are not copied).

    python projects/pseudo_labels/tools/results_to_instances.py \
        work_dirs/pl_glamm/gcg_train.segm.json \
        --images data/synthetic/annotations/instances_train.json \
        --out work_dirs/pl_glamm/instances_train_pseudo.json
"""
import argparse
import json
import os.path as osp
from typing import Dict

from pycocotools import mask as mask_utils

from mmgrounding.structures import GroundingDataError


def results_to_instances(results_file: str, images_file: str, out_file: str,
                         score_thr: float = 0.0) -> Dict[str, int]:
    """Write the instances file; return counts (images, kept, dropped).

    Raises:
        GroundingDataError: a result names an image or a category that
            ``images_file`` does not hold, or has a malformed ``bbox``.
    """
    with open(images_file) as f:
        coco = json.load(f)
    with open(results_file) as f:
        results = json.load(f)
    image_ids = {img['id'] for img in coco['images']}
    cat_ids = {c['id'] for c in coco['categories']}
    name = osp.basename(results_file)
    annotations, dropped = [], 0
    for k, res in enumerate(results):
        for key, known in (('image_id', image_ids),
                           ('category_id', cat_ids)):
            if res.get(key) not in known:
                raise GroundingDataError(
                    f'{key} not in {osp.basename(images_file)}', file=name,
                    record=f'[{k}]', field=key, value=res.get(key))
        bbox = res.get('bbox')
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise GroundingDataError('expected [x, y, w, h]', file=name,
                                     record=f'[{k}]', field='bbox',
                                     value=bbox)
        if res['score'] < score_thr or bbox[2] < 1 or bbox[3] < 1:
            dropped += 1
            continue
        ann = dict(id=len(annotations) + 1, image_id=res['image_id'],
                   category_id=res['category_id'], bbox=bbox, iscrowd=0,
                   score=res['score'])
        if 'segmentation' in res:
            rle = dict(res['segmentation'])
            ann['segmentation'] = rle
            ann['area'] = float(mask_utils.area(
                dict(rle, counts=rle['counts'].encode())))
        else:
            ann['area'] = float(bbox[2] * bbox[3])
        annotations.append(ann)
    out = dict(coco, annotations=annotations)
    out['info'] = dict(coco.get('info') or {},
                       description=f'pseudo-labels from {name} '
                       f'(score >= {score_thr})')
    with open(out_file, 'w') as f:
        json.dump(out, f)
    return dict(images=len(coco['images']), kept=len(annotations),
                dropped=dropped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('results', help='<prefix>.segm.json or .bbox.json')
    parser.add_argument('--images', required=True,
                        help='COCO file of the predicted images')
    parser.add_argument('--out', required=True)
    parser.add_argument('--score-thr', type=float, default=0.0)
    args = parser.parse_args()
    counts = results_to_instances(args.results, args.images, args.out,
                                  args.score_thr)
    print(f'{args.out}: {counts}')


if __name__ == '__main__':
    main()
