"""Convert the grounding model (and prompt encoder) of the LLaVA-G release.

    python tools/model_converters/llava_g_to_mmgrounding.py \\
        checkpoints/llava_grounding_gd_vp work_dirs/llava_g_seg_model.pth \\
        [--prefix grounding_head.] [--prompt-dim 4096] [--no-check] \\
        [--prompt-encoder-prefix prompt_encoder.]

SRC: the HF directory (``pytorch_model-*.bin`` shards + index, or
safetensors, or one weight file), read with ``torch.load(weights_only=True)``
/ safetensors. Only ``seg_model.model.*`` (the OpenSeeD grounding model) is
converted, by :func:`mmgrounding.models.utils.openseed_checkpoint.
convert_openseed_grounding` (rules, verified duplicates, drop list there).
DST: an mmengine checkpoint ``{'state_dict', 'meta'}`` with our
``OpenSeeDGroundingHead`` keys, prefixed by ``--prefix`` (the attribute
name of the head in the LMM).

With ``--prompt-encoder-prefix``, ``interactive_model.model.*`` (the
Semantic-SAM visual-prompt encoder) is converted too, by
:func:`mmgrounding.models.prompt_encoders.semantic_sam_checkpoint.
convert_semantic_sam_prompt_encoder`, into our
``SemanticSAMPromptEncoder`` keys under that prefix (its report names are
shown with the ``interactive_model.model.`` prefix).

By default the full-size head (Swin-T, ``--prompt-dim``) and prompt encoder
(``lm_dim = --prompt-dim``) are built and the converted keys and shapes must
equal their ``state_dict`` exactly (zero missing, zero unexpected), else
nothing is written.

With ``--llm-dst DIR`` the LLM side is converted too
(:mod:`mmgrounding.models.utils.llava_g_llm_checkpoint`):
``model.mm_projector.*`` (one Linear) -> ``--projector-prefix`` +
``layers.0.*`` in DST, and DIR becomes a local HF ``LlamaForCausalLM``
directory (safetensors + config + tokenizer) for
``language_model=dict(type='HFCausalLM', pretrained_model_name_or_path=DIR,
tokenizer=dict(pretrained_model_name_or_path=DIR), special_tokens=('<g_s>',
'<g_e>', '<seg>', '<obj>', '<image>'))``: rows 0..32002 copied, ``<obj>``
(32003) = row 1273 (the official ``"% "`` placeholder), ``<image>`` (32004)
= mean of rows 0..31999. The tokenizer is read from ``--tokenizer`` (default
SRC; the release may ship none: give the base Vicuna's, the official tokens
are added when absent and their ids are checked against the release's
rows). ``--llm-only`` skips ``seg_model`` / ``interactive_model``.

    python tools/model_converters/llava_g_to_mmgrounding.py \\
        checkpoints/llava_grounding_gd_vp work_dirs/llava_g_official.pth \\
        --prefix grounding_head. --prompt-encoder-prefix prompt_encoder. \\
        --llm-dst checkpoints/llava_g_vicuna7b_hf \\
        [--tokenizer checkpoints/vicuna-7b-v1.3]
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
    parser.add_argument('--prompt-encoder-prefix', default=None,
                        help='also convert interactive_model.model.* '
                        'under this prefix, e.g. prompt_encoder.')
    parser.add_argument('--llm-dst', default=None,
                        help='also write the LM as a local HF LLaMA '
                        'directory here (vocab extended to <obj>, <image>) '
                        'and the mm_projector into DST')
    parser.add_argument('--tokenizer', default=None,
                        help='tokenizer directory for --llm-dst '
                        '(default: SRC)')
    parser.add_argument('--projector-prefix', default='projector.',
                        help='prefix of our mm_projector keys')
    parser.add_argument('--llm-dtype', default=None,
                        choices=['float32', 'bfloat16', 'float16'],
                        help='cast the LM weights (default: keep)')
    parser.add_argument('--llm-only', action='store_true',
                        help='with --llm-dst: skip seg_model and '
                        'interactive_model')
    args = parser.parse_args(argv)
    if args.llm_only and args.llm_dst is None:
        parser.error('--llm-only needs --llm-dst')
    return args


def convert_llm(args: argparse.Namespace, official) -> dict:
    """Write the HF LLaMA directory ``args.llm_dst``; return our projector
    keys (``args.projector_prefix`` + ``layers.0.*``). The projector's shape
    must be ``[hidden_size, mm_hidden_size]`` of the release config."""
    import json

    from mmgrounding.models.utils.llava_g_llm_checkpoint import (
        OFFICIAL_OBJ_TOKEN_ID, convert_llava_g_projector, write_llava_g_llm)
    from mmgrounding.utils.hf_loading import from_pretrained_local
    from transformers import AutoTokenizer
    config_path = osp.join(args.src, 'config.json')
    if not osp.isfile(config_path):
        raise FileNotFoundError(f'{config_path}: the release config (Llama '
                                'sizes) is needed for --llm-dst')
    with open(config_path) as f:
        release_config = json.load(f)
    projector = convert_llava_g_projector(official, args.projector_prefix)
    want = (release_config.get('hidden_size'),
            release_config.get('mm_hidden_size'))
    got = tuple(projector[args.projector_prefix + 'layers.0.weight'].shape)
    if got != want:
        raise ValueError(f'mm_projector weight {got} is not [hidden_size, '
                         f'mm_hidden_size] = {list(want)} of {config_path}')
    tokenizer = from_pretrained_local(AutoTokenizer, args.tokenizer
                                      or args.src, '--tokenizer')
    piece = tokenizer.convert_ids_to_tokens(OFFICIAL_OBJ_TOKEN_ID)
    print(f'token {OFFICIAL_OBJ_TOKEN_ID} (the official placeholder, '
          f'expected "\u2581%") is {piece!r}' +
          ('' if '%' in str(piece) else ': WARNING, not a percent sign'))
    dtype = getattr(torch, args.llm_dtype) if args.llm_dtype else None
    token_ids = write_llava_g_llm(official, release_config, tokenizer,
                                  args.llm_dst, dtype=dtype)
    print(f'Wrote the LM to {args.llm_dst} (added tokens {token_ids}; '
          '<obj> rows = row 1273, <image> rows = mean of the base rows)')
    print(f'mm_projector -> {", ".join(projector)}')
    return projector


def check_against_head(state_dict, prefix: str, prompt_dim: int,
                       module=None) -> List[str]:
    """Differences between the converted keys/shapes and a built head (or
    the given module)."""
    if module is None:
        from mmgrounding.models.grounding_heads import OpenSeeDGroundingHead
        module = OpenSeeDGroundingHead(prompt_dim=prompt_dim)
    want = {
        prefix + k: tuple(v.shape)
        for k, v in module.state_dict().items()
    }
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
    from mmgrounding.models.lmms.glamm_checkpoint_mapping import \
        load_hf_state_dict
    from mmgrounding.models.utils.openseed_checkpoint import \
        convert_openseed_grounding
    official = load_hf_state_dict(args.src)
    if args.llm_only:
        return _save(args, dict(convert_llm(args, official)), {}, [])
    state_dict, report = convert_openseed_grounding(
        official, dst_prefix=args.prefix)
    print(f'{len(report.mapped)} mapped, {len(report.duplicates)} verified '
          f'duplicates, {len(report.dropped)} dropped '
          f'({", ".join(report.dropped)})')
    dropped = list(report.dropped)
    duplicates = dict(report.duplicates)
    encoder_state = None
    if args.prompt_encoder_prefix is not None:
        from mmgrounding.models.prompt_encoders.semantic_sam_checkpoint \
            import INTERACTIVE_PREFIX, convert_semantic_sam_prompt_encoder
        encoder_state, enc_report = convert_semantic_sam_prompt_encoder(
            official, dst_prefix=args.prompt_encoder_prefix)
        print(f'interactive model: {len(enc_report.mapped)} mapped, '
              f'{len(enc_report.duplicates)} verified duplicates, '
              f'{len(enc_report.dropped)} dropped '
              f'({", ".join(enc_report.dropped)})')
        dropped += [INTERACTIVE_PREFIX + k for k in enc_report.dropped]
        duplicates.update({
            INTERACTIVE_PREFIX + k: INTERACTIVE_PREFIX + v
            for k, v in enc_report.duplicates.items()
        })
    if not args.no_check:
        problems = check_against_head(state_dict, args.prefix,
                                      args.prompt_dim)
        if encoder_state is not None:
            from mmgrounding.models.prompt_encoders import \
                SemanticSAMPromptEncoder
            problems += check_against_head(
                encoder_state, args.prompt_encoder_prefix, args.prompt_dim,
                SemanticSAMPromptEncoder(lm_dim=args.prompt_dim))
        if problems:
            print('\n'.join(problems[:50]))
            print(f'{len(problems)} key problems, nothing written')
            return 1
        print('keys and shapes equal the head state_dict (0 missing, '
              '0 unexpected)')
    if encoder_state is not None:
        overlap = set(state_dict) & set(encoder_state)
        if overlap:
            print(f'{len(overlap)} keys of the head and the prompt encoder '
                  f'collide (e.g. {sorted(overlap)[0]}): use distinct '
                  'prefixes; nothing written')
            return 1
        state_dict.update(encoder_state)
    llm_state = convert_llm(args, official) if args.llm_dst else {}
    overlap = set(state_dict) & set(llm_state)
    if overlap:
        print(f'{len(overlap)} keys collide with the projector '
              f'(e.g. {sorted(overlap)[0]}); nothing written')
        return 1
    state_dict.update(llm_state)
    return _save(args, state_dict, duplicates, dropped)


def _save(args: argparse.Namespace, state_dict: dict, duplicates: dict,
          dropped: list) -> int:
    """Write DST (``{'state_dict', 'meta'}``)."""
    meta = dict(
        converter='tools/model_converters/llava_g_to_mmgrounding.py',
        source=osp.abspath(args.src),
        prefix=args.prefix,
        prompt_encoder_prefix=args.prompt_encoder_prefix,
        projector_prefix=args.projector_prefix if args.llm_dst else None,
        llm_dst=osp.abspath(args.llm_dst) if args.llm_dst else None,
        duplicates=duplicates,
        dropped=dropped)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=state_dict, meta=meta), args.dst)
    print(f'Wrote {len(state_dict)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
