"""Merge GranD per-image annotation files into one JSON.

GranD is released as one ``{"sa_X.jpg": {...}}`` file per image (millions of
small files); ``GranDPretrainDataset`` reads either that folder or the
merged file this script writes (one ``{"sa_X.jpg": {...}, ...}`` dict), which
loads much faster from network storage. Optionally keeps only the fields the
loader uses, to cut the size.

Usage:
    python tools/dataset_converters/merge_grand_annotations.py \
        GRAND_DIR OUT.json [--keep-fields-for-loader] [--limit N]
"""
import argparse
import glob
import json
import os
import os.path as osp

from mmengine.utils import ProgressBar

#: Per-image fields read by mmgrounding.datasets.GranDPretrainDataset.
LOADER_FIELDS = ('objects', 'floating_objects', 'short_captions',
                 'dense_caption')
OBJECT_FIELDS = ('id', 'bbox', 'segmentation', 'labels', 'attributes')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='folder of GranD per-image *.json')
    parser.add_argument('out', help='merged JSON written here')
    parser.add_argument('--keep-fields-for-loader', action='store_true',
                        help='drop fields GranDPretrainDataset never reads')
    parser.add_argument('--limit', type=int, default=None,
                        help='merge only the first N files (sorted)')
    return parser.parse_args()


def slim(content: dict) -> dict:
    """Only the fields the loader reads."""
    out = {k: content[k] for k in LOADER_FIELDS if k in content}
    for key in ('objects', 'floating_objects'):
        if key in out:
            out[key] = [{f: o[f] for f in OBJECT_FIELDS if f in o}
                        for o in out[key]]
    return out


def main():
    args = parse_args()
    files = sorted(glob.glob(osp.join(args.src, '*.json')))
    if args.limit is not None:
        files = files[:args.limit]
    if not files:
        raise SystemExit(f'no *.json in {args.src}')
    merged, skipped = {}, []
    bar = ProgressBar(len(files))
    for path in files:
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
            if not isinstance(data, dict) or len(data) != 1:
                raise ValueError('not a one-image {"image": {...}} dict')
            (image, content), = data.items()
            if not isinstance(content, dict) or 'objects' not in content:
                raise ValueError('no "objects"')
            if image in merged:
                raise ValueError(f'duplicate image {image}')
            merged[image] = slim(content) if args.keep_fields_for_loader \
                else content
        except (ValueError, OSError) as err:
            skipped.append((path, str(err)))
        bar.update()
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(merged, f, ensure_ascii=False)
    print(f'\nkept {len(merged)} image(s), skipped {len(skipped)}; '
          f'wrote {args.out}')
    for path, why in skipped[:20]:
        print(f'  skipped {path}: {why}')


if __name__ == '__main__':
    main()
