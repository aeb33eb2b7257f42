"""Merge a GLaMM checkpoint's LoRA and export it.

    python tools/model_converters/merge_lora.py CONFIG CKPT OUT_DIR

Builds the model of CONFIG, loads CKPT (a checkpoint of it in any layout
our runners write, ``mmgrounding.engine.checkpoint_layouts``: an mmengine
file from ``Runner`` / DDP, FSDP ``state_dict_cfg='full'`` or
``glamm_to_mmgrounding.py``; a DeepSpeed ZeRO-1/2/3 checkpoint directory such
as ``work_dir/iter_N.pth/``), folds the LoRA adapters
into the language model (``HFCausalLM.merge_lora``) and writes:

- ``OUT_DIR/language_model/``: the merged LM as a HF directory
  (``save_pretrained``) with its tokenizer, special tokens included, so
  ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer`` read it;
- ``OUT_DIR/glamm_weights.pth``: every other GLaMM weight (projector, region
  encoder, [SEG] projector, SAM, and CLIP unless ``--no-clip``) as an
  mmengine checkpoint.

To use the export, point the config's ``language_model`` at
``OUT_DIR/language_model`` (``pretrained_model_name_or_path`` and
``tokenizer``) with ``lora=None`` and set ``load_from`` to
``glamm_weights.pth``.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import torch


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Merge LoRA into the LM and export GLaMM weights')
    parser.add_argument('config', help='config the checkpoint belongs to')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file, or DeepSpeed checkpoint directory')
    parser.add_argument('out_dir', help='output directory')
    parser.add_argument(
        '--no-clip',
        action='store_true',
        help='leave the vision encoder out of glamm_weights.pth')
    parser.add_argument(
        '--safe-serialization',
        type=int,
        choices=[0, 1],
        default=1,
        help='save the LM as safetensors (1, default) or .bin (0)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the export; returns the exit status."""
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.logging import print_log
    from mmengine.runner.checkpoint import _load_checkpoint_to_model

    from mmgrounding.engine.checkpoint_layouts import read_model_state_dict
    from mmgrounding.registry import MODELS
    from mmgrounding.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)
    state, layout = read_model_state_dict(args.checkpoint)
    print_log(f'{args.checkpoint}: {layout} checkpoint, {len(state)} tensors',
              logger='current')
    _load_checkpoint_to_model(
        model, dict(state_dict=state), strict=False, logger='current')
    model.eval()
    lm = getattr(model, 'language_model', None)
    if lm is None or not hasattr(lm, 'merge_lora'):
        print_log(
            f'{args.config}: the model has no HFCausalLM language_model',
            logger='current')
        return 1
    if lm.lora_cfg is None:
        print_log(
            'The language model has no LoRA; exporting it unchanged.',
            logger='current')
    lm.merge_lora()

    lm_dir = osp.join(args.out_dir, 'language_model')
    os.makedirs(lm_dir, exist_ok=True)
    lm.model.save_pretrained(
        lm_dir, safe_serialization=bool(args.safe_serialization))
    lm.tokenizer.save_pretrained(lm_dir)

    skip = ('language_model.', ) + (('vision_encoder.', )
                                    if args.no_clip else ())
    from mmgrounding.models.utils.trainable_state import full_state_dict
    with full_state_dict(model):  # every tensor, none left out
        rest = {
            k: v.detach().clone()
            for k, v in model.state_dict().items() if not k.startswith(skip)
        }
    meta = dict(
        exporter='tools/model_converters/merge_lora.py',
        config=osp.abspath(args.config),
        checkpoint=osp.abspath(args.checkpoint),
        language_model_dir=osp.abspath(lm_dir),
        special_tokens=dict(lm.token_ids))
    weights = osp.join(args.out_dir, 'glamm_weights.pth')
    torch.save(dict(state_dict=rest, meta=meta), weights)
    print_log(
        f'Merged LM -> {lm_dir}; {len(rest)} other tensors -> {weights}',
        logger='current')
    return 0


if __name__ == '__main__':
    sys.exit(main())
