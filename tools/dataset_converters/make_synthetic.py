"""Generate the synthetic grounding world (images, annotations, tokenizer).

Example::

    python tools/dataset_converters/make_synthetic.py --out data/synthetic \
        --num-images 2200 --seed 0 --preview 8

Every file is in the official shape of its source (COCO instances, RefCOCO
refs, GranDf GCG, LLaVA-G GVC/GVC-R, MDETR RefCOCOg and Flickr30K Entities);
see docs/formats.md. The same seed gives the same bytes.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))


def _positive_int(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}')
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be >= {minimum}, got {value}')
        return value
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/synthetic',
                        help='output directory (created if missing)')
    parser.add_argument('--num-images', type=_positive_int(1), default=2200,
                        help='number of images (default 2200)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--image-size', type=_positive_int(32), default=128,
                        help='side of the square images in pixels (>= 32)')
    parser.add_argument('--preview', type=_positive_int(0), default=0, metavar='K',
                        help='print K samples and write preview.png')
    parser.add_argument('--no-tokenizer', action='store_true',
                        help='skip building tokenizer/')
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f'--out {args.out!r} exists and is not a directory')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    # Imported after parsing so that bad arguments fail fast.
    from mmgrounding.datasets.synthetic import generate_world
    generate_world(args.out, num_images=args.num_images, seed=args.seed,
                   image_size=args.image_size, preview=args.preview,
                   with_tokenizer=not args.no_tokenizer, log=print)


if __name__ == '__main__':
    main()
