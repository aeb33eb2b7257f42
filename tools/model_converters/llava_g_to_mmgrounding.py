"""Convert the grounding model of the official LLaVA-Grounding release.

    python tools/model_converters/llava_g_to_mmgrounding.py \\
        checkpoints/llava_grounding_gd_vp work_dirs/llava_g_seg_model.pth \\
        [--prefix grounding_head.] [--prompt-dim 4096] [--no-check]

SRC: the HF directory (``pytorch_model-*.bin`` shards + index, or
safetensors, or one weight file), read with ``torch.load(weights_only=True)``
/ safetensors. Only ``seg_model.model.*`` (the OpenSeeD grounding model) is
converted, by :func:`mmgrounding.models.utils.openseed_checkpoint.
convert_openseed_grounding` (rules, verified duplicates, drop list there).
DST: an mmengine checkpoint ``{'state_dict', 'meta'}`` with our
``OpenSeeDGroundingHead`` keys, prefixed by ``--prefix`` (the attribute
name of the head in the LMM).

By default the full-size head (Swin-T, ``--prompt-dim``) is built and the
converted keys and shapes must equal its ``state_dict`` exactly (zero
missing, zero unexpected), else nothing is written.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import torch


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert LLaVA-G seg_model.model.* to mmgrounding')
    parser.add_argument('src', help='official HF checkpoint dir or file')
    parser.add_argument('dst', help='output mmengine checkpoint (.pth)')
    parser.add_argument('--prefix', default='',
                        help='prefix of our keys, e.g. grounding_head.')
    parser.add_argument('--prompt-dim', type=int, default=4096,
                        help='LLM hidden size (class_embed width)')
    parser.add_argument('--no-check', action='store_true',
                        help='do not build the head to compare keys')
    return parser.parse_args(argv)


def check_against_head(state_dict, prefix: str, prompt_dim: int) -> List[str]:
    """Differences between the converted keys/shapes and a built head."""
    from mmgrounding.models.grounding_heads import OpenSeeDGroundingHead
    head = OpenSeeDGroundingHead(prompt_dim=prompt_dim)
    want = {prefix + k: tuple(v.shape) for k, v in head.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    problems = [f'missing: {k}' for k in sorted(set(want) - set(got))]
    problems += [f'unexpected: {k}' for k in sorted(set(got) - set(want))]
    problems += [
        f'shape {k}: {got[k]} vs head {want[k]}'
        for k in sorted(set(got) & set(want)) if got[k] != want[k]
    ]
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; returns the exit status."""
    args = parse_args(argv)
    from mmgrounding.models.utils.checkpoint_mapping import \
        load_hf_state_dict
    from mmgrounding.models.utils.openseed_checkpoint import \
        convert_openseed_grounding
    official = load_hf_state_dict(args.src)
    state_dict, report = convert_openseed_grounding(
        official, dst_prefix=args.prefix)
    print(f'{len(report.mapped)} mapped, {len(report.duplicates)} verified '
          f'duplicates, {len(report.dropped)} dropped '
          f'({", ".join(report.dropped)})')
    if not args.no_check:
        problems = check_against_head(state_dict, args.prefix,
                                      args.prompt_dim)
        if problems:
            print('\n'.join(problems[:50]))
            print(f'{len(problems)} key problems, nothing written')
            return 1
        print('keys and shapes equal the head state_dict (0 missing, '
              '0 unexpected)')
    meta = dict(
        converter='tools/model_converters/llava_g_to_mmgrounding.py',
        source=osp.abspath(args.src),
        prefix=args.prefix,
        duplicates=report.duplicates,
        dropped=report.dropped)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'Wrote {len(state_dict)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
