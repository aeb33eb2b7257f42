"""Train-step and predict times of a tiny OpenSeeD grounding head (CPU).

    python tools/analysis_tools/benchmark_openseed_head.py \\
        [--batch-sizes 8 32] [--sizes 32:20:256 64:30:784] [--image 128] \\
        [--tokens 1] [--steps 5] [--threads 1]

Each ``--sizes`` entry is ``d:queries:points`` (the design note's §8 tiny
variants; Swin embed ``--swin-dims``, depths 1-1-1-1, window 4, 1 encoder
and 2 decoder layers).
A batch is random pixels with ``--tokens`` grounding tokens per sample, each
referring to its own rectangle object. Times are the median of ``--steps``
steps after one warm-up: "train step" = ``loss`` + backward + AdamW step,
"matching+losses" = the criterion inside it, "predict" = ``predict`` with
the image features computed in the call.
"""
import argparse
import statistics
import time

import numpy as np
import torch


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[8, 32])
    parser.add_argument('--sizes', nargs='+', default=['32:20:256'],
                        help='d:queries:points entries')
    parser.add_argument('--swin-dims', type=int, default=32,
                        help='Swin embed width of the tiny backbone')
    parser.add_argument('--image', type=int, default=128)
    parser.add_argument('--tokens', type=int, default=1)
    parser.add_argument('--prompt-dim', type=int, default=128)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1)
    return parser.parse_args()


def make_batch(batch_size, image, tokens, prompt_dim, seed=0):
    """Random grounding inputs and DetDataSamples (one object per token)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    gen = np.random.default_rng(seed)
    samples = []
    for i in range(batch_size):
        masks = np.zeros((tokens, image, image), dtype=np.uint8)
        boxes = []
        for k in range(tokens):
            x1, y1 = gen.integers(0, image // 2, 2)
            x2, y2 = x1 + gen.integers(8, image // 2), y1 + gen.integers(
                8, image // 2)
            masks[k, y1:y2, x1:x2] = 1
            boxes.append([x1, y1, x2, y2])
        sample = DetDataSample(
            metainfo=dict(img_id=i, ori_shape=(image, image)))
        sample.gt_objects = InstanceData(
            masks=BitmapMasks(masks, image, image),
            bboxes=torch.tensor(boxes, dtype=torch.float32),
            labels=torch.zeros(tokens, dtype=torch.long))
        sample.grounding_instance_ids = [[k] for k in range(tokens)]
        samples.append(sample)
    inputs = dict(
        pixels=torch.randn(batch_size, 3, image, image),
        sizes=torch.full((batch_size, 2), image, dtype=torch.long),
        prompt_mask=torch.ones(batch_size, tokens, dtype=torch.bool))
    prompts = torch.randn(batch_size, tokens, prompt_dim)
    return prompts, inputs, samples


def timed(fn, steps):
    fn()  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    from mmgrounding.models.grounding_heads import tiny_openseed_head_cfg
    from mmgrounding.registry import MODELS
    rows = []
    for size in args.sizes:
        d, queries, points = (int(v) for v in size.split(':'))
        torch.manual_seed(0)
        head = MODELS.build(
            tiny_openseed_head_cfg(args.prompt_dim, embed_dims=d,
                                   swin_dims=args.swin_dims,
                                   num_queries=queries, num_points=points))
        params = sum(p.numel() for p in head.parameters()) / 1e6
        optim = torch.optim.AdamW(head.parameters(), lr=1e-4)
        criterion_time = []
        forward = head.criterion.forward

        def timed_criterion(*a, **k):
            start = time.perf_counter()
            out = forward(*a, **k)
            criterion_time.append(time.perf_counter() - start)
            return out

        head.criterion.forward = timed_criterion
        for batch in args.batch_sizes:
            prompts, inputs, samples = make_batch(batch, args.image,
                                                  args.tokens,
                                                  args.prompt_dim)

            def train_step():
                head.train()
                losses = head.loss(prompts, inputs, samples)
                optim.zero_grad()
                sum(losses.values()).backward()
                optim.step()

            def predict():
                head.eval()
                head.predict(prompts, inputs, samples)

            criterion_time.clear()
            step = timed(train_step, args.steps)
            crit = statistics.median(criterion_time[1:])
            pred = timed(predict, args.steps)
            rows.append((f'd={d} Q={queries} P={points}', params, batch, step,
                         crit, pred))
    print(f'Swin embed {args.swin_dims}, image {args.image}px, '
          f'{args.tokens} token(s)/sample, '
          f'{args.threads} thread(s), median of {args.steps} steps')
    header = (f'{"head":<24}{"params(M)":>10}{"batch":>7}'
              f'{"train step(s)":>15}{"matching+losses(s)":>20}'
              f'{"predict(s)":>12}{"train img/s":>13}')
    print(header)
    print('-' * len(header))
    for name, params, batch, step, crit, pred in rows:
        print(f'{name:<24}{params:>10.2f}{batch:>7}{step:>15.3f}'
              f'{crit:>20.3f}{pred:>12.3f}{batch / step:>13.1f}')


if __name__ == '__main__':
    main()
