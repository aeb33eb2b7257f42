"""Split the synthetic world's COCO instances file by image split.

``make_synthetic.py`` writes one ``annotations/instances.json`` for all
images (the RefCOCO layout: splits live in the refs pickle) and records each
split's image-id range in ``world.json``. mmdet's ``CocoDataset`` and
``CocoMetric`` read one file per split, so this writes
``annotations/instances_{train,val,testA,testB}.json`` (same keys, only that
split's images and their annotations).

    python projects/detect_then_describe/tools/split_instances.py \
        data/synthetic
"""
import argparse
import json
import os.path as osp
from typing import Dict, List

from mmgrounding.structures import GroundingDataError


def split_instances(data_root: str) -> Dict[str, str]:
    """Write one COCO instances file per split; return split -> path.

    Raises:
        FileNotFoundError: ``world.json`` or ``instances.json`` is missing.
        GroundingDataError: a split range is malformed, or an annotation
            points at an image id that the file does not hold.
    """
    world_file = osp.join(data_root, 'world.json')
    ann_file = osp.join(data_root, 'annotations', 'instances.json')
    for path in (world_file, ann_file):
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'split_instances: no {path}; run tools/dataset_converters/'
                'make_synthetic.py first')
    with open(world_file) as f:
        splits = json.load(f).get('splits')
    if not isinstance(splits, dict) or not splits:
        raise GroundingDataError('no split id ranges', 'world.json',
                                 None, 'splits')
    with open(ann_file) as f:
        coco = json.load(f)
    image_ids = {img['id'] for img in coco['images']}
    for ann in coco['annotations']:
        if ann['image_id'] not in image_ids:
            raise GroundingDataError(
                f'annotation {ann.get("id")} names unknown image '
                f'{ann["image_id"]}', 'instances.json', ann['image_id'],
                'image_id')
    out = {}
    for split, bounds in splits.items():
        if not (isinstance(bounds, list) and len(bounds) == 2
                and bounds[0] <= bounds[1]):
            raise GroundingDataError(
                f'split {split!r}: expected [first_id, last_id], got '
                f'{bounds!r}', 'world.json', None, f'splits.{split}')
        first, last = bounds
        images: List[dict] = [
            img for img in coco['images'] if first <= img['id'] <= last
        ]
        keep = {img['id'] for img in images}
        part = dict(coco)
        part['images'] = images
        part['annotations'] = [
            a for a in coco['annotations'] if a['image_id'] in keep
        ]
        path = osp.join(data_root, 'annotations', f'instances_{split}.json')
        with open(path, 'w') as f:
            json.dump(part, f, sort_keys=True, separators=(',', ':'))
        out[split] = path
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root', help='e.g. data/synthetic')
    args = parser.parse_args()
    for split, path in split_instances(args.data_root).items():
        print(f'{split}: {path}')


if __name__ == '__main__':
    main()
