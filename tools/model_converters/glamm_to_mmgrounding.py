"""Convert an official GLaMM release (``MBZUAI/GLaMM-*``) to mmgrounding.

    python tools/model_converters/glamm_to_mmgrounding.py \\
        checkpoints/GLaMM-GCG work_dirs/glamm_gcg_official.pth \\
        [--clip-dir checkpoints/clip-vit-large-patch14-336] \\
        [--check-config configs/glamm/<config>.py]

SRC is the HF directory of the release (``pytorch_model-*.bin`` shards and
``pytorch_model.bin.index.json``, or safetensors shards, or one weight file).
Tensors are read with ``torch.load(weights_only=True)`` / safetensors only.
DST is an mmengine checkpoint ``{'state_dict', 'meta'}`` whose keys are those
of our ``GLaMM`` (see ``mmgrounding/models/lmms/glamm_checkpoint_mapping.py``
for the mapping), for ``load_from=DST`` in a config.

Language model layout (the releases are LoRA-merged full models):

- default: for a config WITH LoRA (``lora=dict(target_modules=['q_proj',
  'v_proj'], ...)``, as ``glamm_vicuna7b_clipl336_sam-h.py``); the merged
  weights become peft's ``base_layer`` weights and the adapters, absent from
  the checkpoint, keep ``lora_B = 0``: the loaded model is the released one
  and fine-tuning starts from it. ``--lora-targets`` must list the config's
  ``target_modules``.
- ``--no-lora``: for a config with ``language_model.lora=None``.

CLIP is not in the releases; our model loads it from the config's
``pretrained_model_name_or_path``. ``--clip-dir`` instead copies a local HF
CLIP's vision tower into the checkpoint (a self-contained file).
``rotary_emb.inv_freq`` buffers are dropped; keys no rule knows are reported
(and fail the run with ``--strict``). ``--check-config`` builds the config's
model on the meta device (no weights; the config's local tokenizer/model
directories must exist) and prints matched / missing / unexpected keys.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import torch


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official GLaMM checkpoint to mmgrounding')
    parser.add_argument('src', help='official HF checkpoint dir or file')
    parser.add_argument('dst', help='output mmengine checkpoint (.pth)')
    parser.add_argument(
        '--clip-dir',
        help='local HF CLIP directory whose vision tower is added to the '
        'checkpoint (default: leave CLIP out)')
    lora = parser.add_mutually_exclusive_group()
    lora.add_argument(
        '--lora-targets',
        nargs='+',
        default=['q_proj', 'v_proj'],
        help='LoRA target modules of the config the checkpoint is for '
        '(default: q_proj v_proj, the official recipe)')
    lora.add_argument(
        '--no-lora',
        action='store_true',
        help='for a config with language_model.lora=None')
    parser.add_argument(
        '--extra-vocab-rows',
        type=int,
        default=1,
        help='vocabulary rows ours has beyond the release (default 1: '
        '<image>), appended as the mean row')
    parser.add_argument(
        '--dtype',
        choices=['keep', 'float32', 'bfloat16', 'float16'],
        default='keep',
        help='cast floating tensors (default: keep the release dtypes)')
    parser.add_argument(
        '--check-config',
        help='build this config on the meta device and compare keys')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='fail on unknown source keys and on a failed --check-config')
    return parser.parse_args(argv)


def clip_state_dict(clip_dir: str) -> dict:
    """Vision-tower weights of a local HF CLIP under our key names."""
    from mmgrounding.models.lmms.glamm_checkpoint_mapping import CLIP_PREFIX
    from mmgrounding.models.vision_encoders.hf_utils import \
        build_hf_vision_model
    tower = build_hf_vision_model(clip_dir)
    return {CLIP_PREFIX + k: v for k, v in tower.state_dict().items()}


def meta_model_state(config: str) -> dict:
    """``state_dict()`` of the config's model built on the meta device."""
    from mmengine.config import Config

    from mmgrounding.registry import MODELS
    from mmgrounding.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(config)
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    return model.state_dict()


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; returns the exit status."""
    args = parse_args(argv)
    from mmgrounding.models.lmms.glamm_checkpoint_mapping import (
        check_keys, convert_official_glamm, load_hf_state_dict,
        summarize_check)
    dtype = None if args.dtype == 'keep' else getattr(torch, args.dtype)
    targets = None if args.no_lora else list(args.lora_targets)

    print(f'Reading {args.src}')
    official = load_hf_state_dict(args.src)
    state_dict, report = convert_official_glamm(
        official,
        lora_target_modules=targets,
        extra_vocab_rows=args.extra_vocab_rows,
        dtype=dtype)
    print(f'{len(official)} source tensors: {len(report.mapped)} mapped, '
          f'{len(report.ignored)} ignored (rotary inv_freq), '
          f'{len(report.unknown)} unknown')
    for key, (old, new) in report.vocab.items():
        print(f'  vocabulary {key}: {old} -> {new} rows (mean row appended)')
    for key in report.unknown:
        print(f'  unknown source key (not converted): {key}')
    if args.clip_dir:
        clip = clip_state_dict(args.clip_dir)
        if dtype is not None:
            clip = {k: v.to(dtype) for k, v in clip.items()}
        print(f'Added {len(clip)} CLIP tensors from {args.clip_dir}')
        state_dict.update(clip)

    status = 0
    if report.unknown and args.strict:
        print('--strict: unknown source keys, nothing written')
        return 1
    if args.check_config:
        check = check_keys(state_dict, meta_model_state(args.check_config))
        print(f'Keys against {args.check_config} (meta device):')
        print(summarize_check(check))
        if not check.ok:
            print('The checkpoint does not fit the config (see above).')
            if args.strict:
                return 1
            status = 1

    meta = dict(
        converter='tools/model_converters/glamm_to_mmgrounding.py',
        source=osp.abspath(args.src),
        lora_target_modules=targets,
        extra_vocab_rows=args.extra_vocab_rows,
        clip_included=bool(args.clip_dir),
        ignored_keys=list(report.ignored),
        unknown_keys=list(report.unknown))
    out_dir = osp.dirname(osp.abspath(args.dst))
    os.makedirs(out_dir, exist_ok=True)
    torch.save(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'Wrote {len(state_dict)} tensors to {args.dst}')
    return status


if __name__ == '__main__':
    sys.exit(main())
