"""RefCOCO (refer toolkit) -> GroundingDINO training and evaluation files.

Reads ``annotations/refs(unc).p`` + ``annotations/instances.json`` of a
RefCOCO-layout root (the synthetic world) and writes, under ``out_dir``:

* ``refcoco_{split}_odvg.jsonl`` (training, mmdet ``ODVGDataset`` "VG"
  mode, what MM-Grounding-DINO trains on): one record per image and round
  ``k``; the caption joins the k-th sentence of each referred object of the
  image (``sentences[k % n]``) with ``". "``, and each object is a region
  with its COCO box (xyxy) and its sentence's character span as
  ``tokens_positive``. GroundingDINO's sub-sentence attention (split at
  ``.``) encodes each expression on its own, as at REC test time, while the
  other expressions of the image are the negatives of the contrastive loss.
* ``final_refcoco_{split}.json`` (evaluation, MDETR layout read by mmdet's
  ``MDETRStyleRefCocoDataset`` and ``RefExpMetric``): one image entry per
  expression (``caption`` = the sentence, ``dataset_name='refcoco'``,
  ``original_id`` = the COCO image id) with one annotation, its referent's
  box.

    python projects/grounding_dino_head/tools/refcoco_to_grounding.py \
        data/synthetic work_dirs/grounding_dino_head/data
"""
import argparse
import json
import os
import os.path as osp
import pickle
from collections import defaultdict
from typing import Dict, List

from mmgrounding.structures import GroundingDataError

REFS = 'refs(unc).p'
INSTANCES = 'instances.json'


def _load(data_root: str):
    ann_dir = osp.join(data_root, 'annotations')
    with open(osp.join(ann_dir, REFS), 'rb') as f:
        refs = pickle.load(f)
    with open(osp.join(ann_dir, INSTANCES)) as f:
        coco = json.load(f)
    images = {im['id']: im for im in coco['images']}
    anns = {a['id']: a for a in coco['annotations']}
    return refs, images, anns


def _check(ref: dict, images: dict, anns: dict) -> None:
    """Raise ``GroundingDataError`` for a ref that cannot be converted."""
    rid = ref.get('ref_id')
    if ref.get('ann_id') not in anns:
        raise GroundingDataError(
            'ann_id is not an annotation of instances.json', file=REFS,
            record=rid, field='ann_id', value=ref.get('ann_id'))
    if ref.get('image_id') not in images:
        raise GroundingDataError(
            'image_id is not an image of instances.json', file=REFS,
            record=rid, field='image_id', value=ref.get('image_id'))
    sents = ref.get('sentences')
    if not sents or any(not str(s.get('sent', '')).strip() for s in sents):
        raise GroundingDataError(
            'every ref needs at least one non-empty sentence', file=REFS,
            record=rid, field='sentences', value=sents)


def _xyxy(ann: dict) -> List[float]:
    x, y, w, h = ann['bbox']
    return [x, y, x + w, y + h]


def odvg_records(data_root: str, split: str) -> List[dict]:
    """ODVG grounding records of ``split`` (see the module docstring)."""
    refs, images, anns = _load(data_root)
    per_image: Dict[int, List[dict]] = defaultdict(list)
    for ref in refs:
        if ref.get('split') == split:
            _check(ref, images, anns)
            per_image[ref['image_id']].append(ref)
    if not per_image:
        raise ValueError(f'no refs with split {split!r} in {data_root}')
    records = []
    for image_id in sorted(per_image):
        group = sorted(per_image[image_id], key=lambda r: r['ref_id'])
        rounds = max(len(r['sentences']) for r in group)
        img = images[image_id]
        for k in range(rounds):
            caption, regions = '', []
            for ref in group:
                sent = ref['sentences'][k % len(ref['sentences'])]['sent']
                sent = ' '.join(sent.lower().split())
                if caption:
                    caption += '. '
                start = len(caption)
                caption += sent
                regions.append(dict(
                    bbox=_xyxy(anns[ref['ann_id']]), phrase=sent,
                    tokens_positive=[[start, len(caption)]]))
            records.append(dict(
                filename=img['file_name'], height=img['height'],
                width=img['width'],
                grounding=dict(caption=caption + '.', regions=regions)))
    return records


def mdetr_refexp(data_root: str, split: str) -> dict:
    """MDETR-style RefCOCO json of ``split``: one image per expression."""
    refs, images, anns = _load(data_root)
    out_images, out_anns = [], []
    for ref in sorted((r for r in refs if r.get('split') == split),
                      key=lambda r: r['ref_id']):
        _check(ref, images, anns)
        img, ann = images[ref['image_id']], anns[ref['ann_id']]
        for sent in ref['sentences']:
            new_id = len(out_images)
            out_images.append(dict(
                id=new_id, file_name=img['file_name'], height=img['height'],
                width=img['width'], caption=sent['sent'],
                dataset_name='refcoco', original_id=img['id'],
                ref_id=ref['ref_id'], sent_id=sent['sent_id'],
                ann_id=ann['id']))
            out_anns.append(dict(
                id=new_id + 1, image_id=new_id, bbox=list(ann['bbox']),
                area=ann['bbox'][2] * ann['bbox'][3], iscrowd=0,
                category_id=ann['category_id']))
    if not out_images:
        raise ValueError(f'no refs with split {split!r} in {data_root}')
    return dict(images=out_images, annotations=out_anns,
                categories=[dict(id=1, name='object')])


def convert(data_root: str, out_dir: str,
            train_splits=('train', ), eval_splits=('val', )) -> dict:
    """Write the files; return {name: path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for split in train_splits:
        path = osp.join(out_dir, f'refcoco_{split}_odvg.jsonl')
        with open(path, 'w') as f:
            for rec in odvg_records(data_root, split):
                f.write(json.dumps(rec) + '\n')
        paths[f'odvg_{split}'] = path
    for split in eval_splits:
        path = osp.join(out_dir, f'final_refcoco_{split}.json')
        with open(path, 'w') as f:
            json.dump(mdetr_refexp(data_root, split), f)
        paths[f'mdetr_{split}'] = path
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('data_root')
    parser.add_argument('out_dir')
    parser.add_argument('--train-splits', nargs='+', default=['train'])
    parser.add_argument('--eval-splits', nargs='+',
                        default=['val', 'testA', 'testB'])
    args = parser.parse_args()
    for name, path in convert(args.data_root, args.out_dir,
                              args.train_splits, args.eval_splits).items():
        print(name, path)


if __name__ == '__main__':
    main()
