"""Generation throughput: ours vs plain HF ``generate`` vs the official loop.

All loops run in one process on the same weights and the same prompts
(random pixels + ``<s> words <image>*P words``, left padded):

- the official GLaMM loop: batch 1, no KV cache, vision tower and LM re-run
  over the whole sequence for every token (``generate_reference``);
- plain ``transformers`` ``generate`` on the same prompt embeddings (the
  model's ``embed_inputs`` + ``language_model.model.generate``), with and
  without ``output_hidden_states`` (what grounding needs from HF: every
  layer's states at every step, to read the last one);
- ours: ``generate_batch`` keeping the grounding tokens' states (the predict
  path), with the dynamic cache and (``--static``) the static cache
  (``--compile`` adds ``torch.compile`` on a GPU).

Every loop produces exactly ``--new-tokens`` greedy tokens (eos ignored) and
the tokens of every batched loop are checked equal to ours::

    python tools/analysis_tools/benchmark_generation.py \
        [--config CONFIG] [--batch-sizes 1 8 16] [--new-tokens 32] \
        [--device cuda] [--static] [--compile]

Without ``--config`` a tiny random GLaMM is built in-process (tiny
tokenizer, ``mmgrounding.testing.tiny_glamm_cfg``). Any model config of a
``BaseGroundedLMM`` works (GLaMM, LLaVA-Grounding): only the base-class API
is used.
"""
import argparse
import os
import tempfile
import time

import torch

os.environ.setdefault('HF_HUB_OFFLINE', '1')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', help='model config (default: tiny GLaMM)')
    parser.add_argument('--checkpoint', help='optional weights to load')
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
        help='time each batched run this many times (interleaved with the '
        'other loops) and keep the fastest')
    parser.add_argument(
        '--sharpen',
        type=float,
        default=20.,
        help='scale the LM head of a random model by this (fewer greedy '
        'near-ties between the loops); 1 = weights as built/loaded')
    parser.add_argument('--static', action='store_true',
                        help='also time ours with the static KV cache')
    parser.add_argument('--compile', action='store_true',
                        help='with --static: torch.compile the decode step')
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
    model = MODELS.build(cfg)
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    if args.sharpen != 1.:
        with torch.no_grad():
            model.language_model.model.get_output_embeddings().weight.mul_(
                args.sharpen)
    return model.to(args.device).eval()


def image_geometry(model, device):
    """(clip image side, image tokens per image) through the base API."""
    pre = model.data_preprocessor
    size = getattr(pre, 'clip_size', None) or \
        getattr(model.vision_encoder, 'image_size')
    with torch.no_grad():
        feats = model.extract_visual_features(
            torch.zeros(1, 3, size, size, device=device))
        n_img = model.projector(feats[model.image_feature_level]).shape[1]
    return size, n_img


def make_inputs(model, batch, args, gen, size, n_img):
    """Random pixels + prompts ``<s> words <image>*N words`` (left padded)."""
    lm = model.language_model
    tok = lm.tokenizer
    specials = set(lm.token_ids.values()) | {
        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id
    }
    words = torch.tensor(
        [i for i in range(len(tok)) if i not in specials])
    rows = []
    for _ in range(batch):
        n = int(
            torch.randint(
                args.prompt_words // 2,
                args.prompt_words + 1, (1, ),
                generator=gen))
        text = words[torch.randint(len(words), (n, ), generator=gen)]
        head = [tok.bos_token_id] if tok.bos_token_id is not None else []
        rows.append(
            torch.cat([
                torch.tensor(head, dtype=torch.long), text[:n // 2],
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


def timed(fn, repeats, device):
    """(fastest seconds, result of the last run): wall time on a GPU, this
    process's CPU time on a CPU (a shared machine's load then does not
    count: the loops run single-threaded, so on an idle machine the two
    agree)."""
    cuda = device.startswith('cuda')
    clock = time.perf_counter if cuda else time.process_time
    best, out = float('inf'), None
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = clock()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, clock() - start)
    return best, out


def hf_generate(model, inputs, new_tokens, hidden):
    """Plain ``transformers`` ``generate`` on our prompt embeddings."""
    lm = model.language_model
    embeds = model.embed_inputs(inputs['input_ids'], inputs)
    out = lm.model.generate(
        inputs_embeds=embeds.to(lm.compute_dtype),
        attention_mask=inputs['attention_mask'],
        max_new_tokens=new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=lm.pad_token_id,
        suppress_tokens=[model.image_token_id],
        output_hidden_states=hidden,
        return_dict_in_generate=True)
    return out.sequences


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as workdir:
        model = build_model(args, workdir)
    lm = model.language_model
    # exactly --new-tokens tokens everywhere: no eos in HF generate either
    lm.model.generation_config.eos_token_id = None
    size, n_img = image_geometry(model, args.device)
    ours_cfg = dict(eos_token_id=None, max_new_tokens=args.new_tokens,
                    state_token_ids=(model.seg_token_id, ))
    variants = [('ours, dynamic KV cache', ours_cfg)]
    if args.static or args.compile:
        variants.append((
            'ours, static KV cache' + (' + compile' if args.compile else ''),
            dict(ours_cfg, cache_implementation='static',
                 compile=args.compile)))

    # official loop: batch 1, no cache, full recompute (vision included)
    ref_inputs = make_inputs(model, args.reference_samples, args, gen, size,
                             n_img)
    ref_time, ref_tokens, matches = 0., 0, 0
    with torch.no_grad():
        model.generate_batch(ref_inputs, None,
                             **dict(ours_cfg, max_new_tokens=2))  # warm-up
        for i in range(args.reference_samples):
            secs, ref = timed(
                lambda: model.generate_reference(
                    ref_inputs, None, index=i, ignore_eos=True,
                    max_new_tokens=args.new_tokens), 1, args.device)
            ref_time += secs
            ref_tokens += ref.sequences.numel()
            one = {k: v[i:i + 1] for k, v in ref_inputs.items()}
            ours = model.generate_batch(one, None, **ours_cfg)
            matches += int(torch.equal(ours.sequences, ref.sequences))
    ref_tps = ref_tokens / ref_time

    table = [('official loop (no cache)', 1, ref_tokens, ref_time, ref_tps,
              f'{matches}/{args.reference_samples}')]
    for batch in args.batch_sizes:
        inputs = make_inputs(model, batch, args, gen, size, n_img)
        loops = {}
        for name, cfg in variants:
            loops[name] = (lambda cfg=cfg: model.generate_batch(
                inputs, None, **cfg).sequences)
        for hidden in (False, True):
            name = 'HF generate' + (', output_hidden_states'
                                    if hidden else '')
            loops[name] = (lambda hidden=hidden: hf_generate(
                model, inputs, args.new_tokens, hidden))
        results = {}
        with torch.no_grad():
            for name, fn in loops.items():
                fn()  # warm-up (and compile)
            # repeats interleaved over the loops: load drift hits them all
            for _ in range(args.repeats):
                for name, fn in loops.items():
                    secs, seq = timed(fn, 1, args.device)
                    if name not in results or secs < results[name][0]:
                        results[name] = (secs, seq)
        base = results[variants[0][0]][1]
        for name, (secs, seq) in results.items():
            tokens = seq.numel()
            same = 'ref' if seq is base else (
                'yes' if torch.equal(seq.to(base.device), base) else 'NO')
            table.append((name, batch, tokens, secs, tokens / secs, same))

    params = sum(p.numel() for p in model.parameters())
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    print(f'model: {type(model).__name__}, {params / 1e6:.2f} M parameters, '
          f'{n_img} image tokens, {args.new_tokens} new tokens, '
          f'{args.threads} thread(s), device {args.device}, '
          f'load average {load:.1f}, seconds = ' +
          ('wall time' if args.device.startswith('cuda') else
           'CPU time of this process') + f', best of {args.repeats}')
    header = f"{'loop':<40}{'batch':>6}{'tokens':>8}{'seconds':>10}" \
             f"{'tokens/s':>11}{'vs official':>12}{'vs HF':>8}" \
             f"{'vs HF+hs':>10}{'same tokens':>13}"
    print(header)
    print('-' * len(header))
    hf = {(r[0], r[1]): r[4] for r in table}
    for name, batch, tokens, secs, tps, same in table:
        plain = hf.get(('HF generate', batch))
        with_hs = hf.get(('HF generate, output_hidden_states', batch))
        rel = [f'{tps / plain:>7.2f}x' if plain else f"{'':>8}",
               f'{tps / with_hs:>9.2f}x' if with_hs else f"{'':>10}"]
        print(f'{name:<40}{batch:>6}{tokens:>8}{secs:>10.3f}{tps:>11.1f}'
              f'{tps / ref_tps:>11.1f}x{rel[0]}{rel[1]}{same:>13}')
    print('same tokens: the batched loops against ours at the same batch; '
          'the official loop against ours at batch 1, per sample')


if __name__ == '__main__':
    main()
