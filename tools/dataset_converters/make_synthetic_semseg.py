"""Write the mmseg semantic split (``semseg/``) of an existing synthetic world.

``make_synthetic.py`` writes it with the rest of the world; this adds it to
a world generated before (or into another folder, for a read-only world).

    python tools/dataset_converters/make_synthetic_semseg.py data/synthetic \
        [--out DIR]
"""
import argparse

from mmgrounding.datasets.synthetic import write_semseg_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root', help='a generated world')
    parser.add_argument('--out', help='default: <data_root>/semseg')
    args = parser.parse_args()
    for name, count in write_semseg_split(args.data_root, args.out).items():
        print(f'{name}: {count}')


if __name__ == '__main__':
    main()
