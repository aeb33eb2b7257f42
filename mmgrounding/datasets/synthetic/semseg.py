"""The synthetic world's semantic-segmentation split, mmseg layout.

Classes are background + the shape kinds (``SEMSEG_CLASSES``; label = COCO
``category_id``, 0 = background): the GLaMM semantic-segmentation source
(ADE20K / COCO-Stuff style) names a class, not an instance or a colour, so
colour stays a referring attribute and the label space is the detector's
plus background. Written from ``annotations/instances.json`` (the visible
masks: polygons when unoccluded, RLE otherwise), so the label map and the
instance GT agree pixel for pixel:

    semseg/labels/<stem>.png    uint8 label map, one per image (mmseg
                                ``seg_map_suffix='.png'``, no zero reduction)
    semseg/<split>.txt          the image stems of each split (mmseg
                                ``ann_file``, as VOC's ImageSets lists)
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from mmgrounding.structures import GroundingDataError
from .scene import CATEGORY_IDS, SHAPES

#: label value -> class name (0 = background).
SEMSEG_CLASSES = ('background', ) + tuple(SHAPES)
#: the palette of the label PNGs (P mode), one RGB per class.
SEMSEG_PALETTE = [(0, 0, 0), (220, 20, 60), (0, 128, 0), (0, 0, 142)]
SEMSEG_DIR = 'semseg'


def _decode(seg, height: int, width: int) -> np.ndarray:
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    else:
        counts = seg['counts']
        rle = dict(size=seg['size'], counts=counts.encode()
                   if isinstance(counts, str) else counts)
    return mask_utils.decode(rle).astype(bool)


def semantic_label_map(anns: Sequence[dict], height: int, width: int,
                       file: str = 'instances.json') -> np.ndarray:
    """uint8 [H, W] label map of one image: each annotation's visible mask
    painted with its ``category_id`` in file order, 0 elsewhere.

    Raises:
        GroundingDataError: an unknown ``category_id`` (naming the file,
            the annotation id and the field).
    """
    label = np.zeros((height, width), dtype=np.uint8)
    known = set(CATEGORY_IDS.values())
    for ann in anns:
        if ann.get('category_id') not in known:
            raise GroundingDataError(
                f'category_id not in {sorted(known)}', file=file,
                record=ann.get('id'), field='category_id',
                value=ann.get('category_id'))
        label[_decode(ann['segmentation'], height, width)] = \
            ann['category_id']
    return label


def write_semseg_split(data_root: str,
                       out: Optional[str] = None,
                       splits: Optional[Dict[str, Sequence[int]]] = None
                       ) -> Dict[str, int]:
    """Write ``<out>/labels/*.png`` and ``<out>/<split>.txt``.

    Args:
        data_root: a generated world (``annotations/instances.json``, and
            ``world.json`` unless ``splits`` is given).
        out: output folder (default ``<data_root>/semseg``).
        splits: split -> [first_id, last_id] (default: ``world.json``'s).

    Returns:
        counts: number of label maps and of stems per split.
    """
    out = out or osp.join(data_root, SEMSEG_DIR)
    if splits is None:
        with open(osp.join(data_root, 'world.json')) as f:
            splits = json.load(f)['splits']
    with open(osp.join(data_root, 'annotations', 'instances.json')) as f:
        coco = json.load(f)
    by_image: Dict[int, List[dict]] = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    os.makedirs(osp.join(out, 'labels'), exist_ok=True)
    palette = [v for rgb in SEMSEG_PALETTE for v in rgb]
    stems: Dict[str, List[str]] = {k: [] for k in splits}
    for img in sorted(coco['images'], key=lambda i: i['id']):
        label = semantic_label_map(by_image.get(img['id'], []),
                                   img['height'], img['width'])
        stem = osp.splitext(img['file_name'])[0]
        png = Image.fromarray(label, mode='P')
        png.putpalette(palette)
        png.save(osp.join(out, 'labels', f'{stem}.png'))
        for split, (first, last) in splits.items():
            if first <= img['id'] <= last:
                stems[split].append(stem)
    counts = {'semseg/labels/*.png': len(coco['images'])}
    for split, names in stems.items():
        with open(osp.join(out, f'{split}.txt'), 'w') as f:
            f.write(''.join(f'{s}\n' for s in names))
        counts[f'semseg/{split}.txt'] = len(names)
    return counts
