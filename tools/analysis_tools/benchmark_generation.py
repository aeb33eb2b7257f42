"""Generation throughput: batched KV-cache decoding vs the official GLaMM loop.

The official GLaMM inference decodes one image at a time with the KV cache
off, re-running the vision tower and the LM over the whole sequence for every
new token. This script times both on the same weights and prompts:

    python tools/analysis_tools/benchmark_generation.py \
        [--config CONFIG] [--batch-sizes 1 8 16] [--new-tokens 32]

Without ``--config`` a tiny random GLaMM is built in-process (tiny tokenizer,
``mmgrounding.testing.tiny_glamm_cfg``). Both loops are forced to produce
exactly ``--new-tokens`` tokens (eos ignored) so that tokens/s compare.
"""
import argparse
import os
import sys
import tempfile
import time

import torch
from mmengine.utils import ProgressBar

os.environ.setdefault('HF_HUB_OFFLINE', '1')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', help='model config (default: tiny GLaMM)')
    parser.add_argument(
        '--batch-sizes', type=int, nargs='+', default=[1, 8, 16])
    parser.add_argument('--new-tokens', type=int, default=32)
    parser.add_argument(
        '--prompt-words',
        type=int,
        default=24,
        help='text tokens per prompt besides the image tokens (rows get '
        'between half and all of them, so the batch is left padded)')
    parser.add_argument(
        '--reference-samples',
        type=int,
        default=2,
        help='samples decoded with the official loop')
    parser.add_argument(
        '--repeats',
        type=int,
        default=3,
        help='time each batched run this many times and keep the fastest')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    return parser.parse_args()


def build_model(args, workdir):
    from mmgrounding.registry import MODELS
    from mmgrounding.utils import register_all_modules
    register_all_modules()
    if args.config:
        from mmengine.config import Config
        cfg = Config.fromfile(args.config).model
    else:
        from mmgrounding.testing import build_tiny_tokenizer, tiny_glamm_cfg
        build_tiny_tokenizer(workdir)
        cfg = tiny_glamm_cfg(workdir)
    torch.manual_seed(args.seed)
    return MODELS.build(cfg).to(args.device).eval()


def make_inputs(model, batch, args, gen):
    """Random pixels + prompts ``<s> words <image>*N words`` (left padded)."""
    lm = model.language_model
    n_img = model.vision_encoder.num_patches
    size = model.vision_encoder.image_size
    specials = set(lm.token_ids.values()) | {
        lm.tokenizer.bos_token_id, lm.tokenizer.eos_token_id,
        lm.tokenizer.pad_token_id, lm.tokenizer.unk_token_id
    }
    words = torch.tensor(
        [i for i in range(len(lm.tokenizer)) if i not in specials])
    rows = []
    for _ in range(batch):
        n = int(
            torch.randint(
                args.prompt_words // 2,
                args.prompt_words + 1, (1, ),
                generator=gen))
        text = words[torch.randint(len(words), (n, ), generator=gen)]
        rows.append(
            torch.cat([
                torch.tensor([lm.tokenizer.bos_token_id]), text[:n // 2],
                torch.full((n_img, ), model.image_token_id), text[n // 2:]
            ]))
    length = max(len(r) for r in rows)
    ids = torch.full((batch, length), lm.pad_token_id)
    mask = torch.zeros((batch, length), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, length - len(r):] = r
        mask[i, length - len(r):] = 1
    dev = args.device
    return dict(
        input_ids=ids.to(dev),
        attention_mask=mask.to(dev),
        clip_pixels=torch.randn(batch, 3, size, size, generator=gen).to(dev))


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as workdir:
        model = build_model(args, workdir)
    no_eos = dict(eos_token_id=None, max_new_tokens=args.new_tokens)

    # official loop: batch 1, no cache, full recompute (vision included)
    ref_inputs = make_inputs(model, args.reference_samples, args, gen)
    ref_time, ref_tokens, matches = 0., 0, 0
    with torch.no_grad():
        # warm-up
        model.generate_batch(ref_inputs, None,
                             **dict(no_eos, max_new_tokens=2))
        bar = ProgressBar(args.reference_samples, file=sys.stderr)
        for i in range(args.reference_samples):
            bar.update()  # outside the timed call
            start = time.perf_counter()
            ref = model.generate_reference(
                ref_inputs,
                None,
                index=i,
                ignore_eos=True,
                max_new_tokens=args.new_tokens)
            ref_time += time.perf_counter() - start
            ref_tokens += ref.sequences.numel()
            one = {k: v[i:i + 1] for k, v in ref_inputs.items()}
            ours = model.generate_batch(one, None, **no_eos)
            matches += int(torch.equal(ours.sequences, ref.sequences))
    sys.stderr.write('\n')
    ref_tps = ref_tokens / ref_time

    rows = [('official loop (bs 1, no cache)', 1, ref_tokens, ref_time,
             ref_tps, 1.0)]
    bar = ProgressBar(len(args.batch_sizes), file=sys.stderr)
    for batch in args.batch_sizes:
        bar.update()  # before the timed repeats
        inputs = make_inputs(model, batch, args, gen)
        elapsed = float('inf')
        with torch.no_grad():
            for _ in range(args.repeats):
                start = time.perf_counter()
                out = model.generate_batch(inputs, None, **no_eos)
                elapsed = min(elapsed, time.perf_counter() - start)
        tokens = out.sequences.numel()
        tps = tokens / elapsed
        rows.append((f'batched KV cache (bs {batch})', batch, tokens, elapsed,
                     tps, tps / ref_tps))
    sys.stderr.write('\n')

    lm_params = sum(p.numel() for p in model.parameters())
    print(f'model: {lm_params / 1e6:.2f} M parameters, '
          f'{model.vision_encoder.num_patches} image tokens, '
          f'{args.new_tokens} new tokens, {args.threads} thread(s), '
          f'device {args.device}')
    print(f'greedy tokens identical to the official loop: '
          f'{matches}/{args.reference_samples} samples')
    header = f"{'loop':<34}{'batch':>6}{'tokens':>8}{'seconds':>10}" \
             f"{'tokens/s':>11}{'speed-up':>10}"
    print(header)
    print('-' * len(header))
    for name, batch, tokens, secs, tps, ratio in rows:
        print(f'{name:<34}{batch:>6}{tokens:>8}{secs:>10.3f}{tps:>11.1f}'
              f'{ratio:>9.1f}x')


if __name__ == '__main__':
    main()
