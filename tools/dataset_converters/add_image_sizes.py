"""Add ``height``/``width`` to the entries of a LLaVA-style JSON list.

LLaVA-Instruct-150K (and the LLaVA-G chat files) give no image size, so
``LLaVAInstructDataset`` reads every image header at start-up; on network
storage that is slow. This script reads the headers once (PIL, header only)
and writes a copy of the file with the sizes, which the loaders then use.
Entries whose image is missing or unreadable are dropped (listed).

Usage:
    python tools/dataset_converters/add_image_sizes.py ANN.json IMG_DIR \
        OUT.json [--image-key image]
"""
import argparse
import json
import os.path as osp

from mmengine.utils import ProgressBar
from PIL import Image


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('ann', help='JSON list of entries')
    parser.add_argument('img_dir', help='image folder')
    parser.add_argument('out', help='output JSON')
    parser.add_argument('--image-key', default='image',
                        help='entry field holding the image file name')
    return parser.parse_args()


def main():
    args = parse_args()
    with open(args.ann, encoding='utf-8') as f:
        entries = json.load(f)
    if not isinstance(entries, list):
        raise SystemExit(f'{args.ann} is not a JSON list')
    kept, skipped, sizes = [], [], {}
    bar = ProgressBar(len(entries))
    for entry in entries:
        name = entry.get(args.image_key)
        try:
            if name is None:
                raise ValueError(f'no "{args.image_key}" field')
            if name not in sizes:
                with Image.open(osp.join(args.img_dir, name)) as img:
                    sizes[name] = img.size  # (w, h)
            width, height = sizes[name]
            kept.append(dict(entry, height=int(height), width=int(width)))
        except (OSError, ValueError) as err:
            skipped.append((entry.get('id'), str(err)))
        bar.update()
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(kept, f, ensure_ascii=False)
    print(f'\nkept {len(kept)} entr(y/ies), skipped {len(skipped)}; '
          f'wrote {args.out}')
    for rid, why in skipped[:20]:
        print(f'  skipped id={rid!r}: {why}')


if __name__ == '__main__':
    main()
