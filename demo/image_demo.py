"""Ask a grounded LMM about one image; print the answer, save the masks drawn.

Examples::

    # grounded conversation generation (GLaMM's GCG instruction by default)
    python demo/image_demo.py data/synthetic/images/000000000001.png \\
        configs/glamm/glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py \\
        --weights work_dirs/glamm_tiny_demo/iter_1000.pth --task gcg

    # referring segmentation: the prompt is the expression
    python demo/image_demo.py IMAGE CONFIG --weights CKPT --task refseg \\
        --prompt "red circle left of the square"

    # a question about boxed regions: one --box per <bbox>, in order
    python demo/image_demo.py IMAGE CONFIG --weights CKPT \\
        --prompt "What is in <bbox>?" --box 10 10 60 60
"""
import argparse
import os
from typing import List, Optional

os.environ.setdefault('HF_HUB_OFFLINE', '1')

from mmgrounding.apis import GroundingInferencer  # noqa: E402
from mmgrounding.apis.grounding_inferencer import TASKS  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Grounded answer for one image and one prompt')
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='mmgrounding config file')
    parser.add_argument('--weights', help='checkpoint (default: random '
                        'weights, for smoke tests only)')
    parser.add_argument('--prompt', help='question; for --task refseg the '
                        'referring expression; for gcg optional')
    parser.add_argument('--task', default='chat', choices=TASKS)
    parser.add_argument('--box', nargs=4, type=float, action='append',
                        metavar=('X1', 'Y1', 'X2', 'Y2'),
                        help='a region box in pixels, one per <bbox> in the '
                        'prompt (repeat the option for several)')
    parser.add_argument('--out-dir', default='outputs',
                        help='where vis/*.png is written')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--max-new-tokens', type=int)
    parser.add_argument('--do-sample', action='store_true')
    parser.add_argument('--temperature', type=float)
    parser.add_argument('--seed', type=int, help='sampling seed')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    inferencer = GroundingInferencer(
        args.config, weights=args.weights, device=args.device)
    result = inferencer(
        args.image,
        args.prompt,
        boxes=[args.box] if args.box else None,
        task=args.task,
        max_new_tokens=args.max_new_tokens,
        do_sample=True if args.do_sample else None,
        temperature=args.temperature,
        seed=args.seed,
        out_dir=args.out_dir)[0]
    print(f'answer:  {result["text"]}')
    print(f'caption: {result["caption"]}')
    phrases = result['phrases']
    print(f'phrases: {phrases}')
    for k, (box, score) in enumerate(zip(result['boxes'], result['scores'])):
        # GLaMM pairs the k-th [SEG] with the k-th phrase when both exist
        phrase = phrases[k] if k < len(phrases) else '-'
        box = ', '.join(f'{v:.0f}' for v in box)
        print(f'  mask {k}: {phrase!r} box [{box}] score {score:.3f}')
    print(f'visualisation: {result["vis_file"]}')
    return result


if __name__ == '__main__':
    main()
