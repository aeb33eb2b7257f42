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

    # visual prompts of every kind, one option per <obj> / <bbox>, in the
    # order of the placeholders: a click, a scribble (>= 2 points), a box,
    # a Set-of-Mark mark (its box is painted with its number)
    python demo/image_demo.py IMAGE LLAVA_G_CONFIG --weights CKPT \\
        --prompt "Is <obj> left of <obj>? And <obj>? What is [1]... <obj>" \\
        --point 30 40 --scribble 5 5 20 9 30 12 --box 60 60 90 100 \\
        --mark 10 80 40 120

The PNG (``{out-dir}/vis/*.png``) shows the prompts (numbered, in gold;
marks painted as the model saw them) and the answer's masks.
"""
import argparse
import os
from typing import List, Optional, Sequence

os.environ.setdefault('HF_HUB_OFFLINE', '1')

from mmgrounding.apis import GroundingInferencer  # noqa: E402
from mmgrounding.apis.grounding_inferencer import TASKS  # noqa: E402


class _RegionAction(argparse.Action):
    """Append ``(kind, values)`` to ``namespace.regions``: the region
    prompts in command-line order, one per placeholder."""

    def __call__(self, parser, namespace, values, option_string=None):
        values = [float(v) for v in values]
        kind = self.dest
        if kind in ('box', 'mark') and len(values) != 4:
            parser.error(f'--{kind} takes X1 Y1 X2 Y2')
        if kind == 'point' and len(values) != 2:
            parser.error('--point takes X Y')
        if kind == 'scribble' and (len(values) < 4 or len(values) % 2):
            parser.error('--scribble takes X1 Y1 X2 Y2 [X Y ...] (>= 2 '
                         'points)')
        regions = list(getattr(namespace, 'regions', None) or [])
        regions.append((kind, values))
        namespace.regions = regions


def region_kwargs(regions: Sequence) -> dict:
    """``(kind, values)`` in placeholder order -> the inferencer's
    ``boxes`` / ``points`` / ``scribbles`` / ``marks`` lists, aligned with
    None (the k-th placeholder takes the one kind given at k)."""
    if not regions:
        return {}
    names = dict(box='boxes', point='points', scribble='scribbles',
                 mark='marks')
    out = {name: [None] * len(regions) for name in names.values()}
    for k, (kind, values) in enumerate(regions):
        out[names[kind]][k] = values if kind != 'scribble' else [
            values[i:i + 2] for i in range(0, len(values), 2)
        ]
    used = {names[kind] for kind, _ in regions}
    if used == {'boxes'}:
        return dict(boxes=[out['boxes']])
    return {name: [value] for name, value in out.items() if name in used}


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
    region_help = ('one per <bbox> / <obj> placeholder, in their order '
                   '(repeat and mix the region options)')
    parser.add_argument('--box', nargs=4, action=_RegionAction,
                        metavar=('X1', 'Y1', 'X2', 'Y2'),
                        help='a region box in pixels; ' + region_help)
    parser.add_argument('--point', nargs=2, action=_RegionAction,
                        metavar=('X', 'Y'),
                        help='a click in pixels (needs a visual-prompt '
                        'encoder); ' + region_help)
    parser.add_argument('--scribble', nargs='+', action=_RegionAction,
                        metavar='XY',
                        help='a scribble X1 Y1 X2 Y2 ... (>= 2 points; needs '
                        'a visual-prompt encoder); ' + region_help)
    parser.add_argument('--mark', nargs=4, action=_RegionAction,
                        metavar=('X1', 'Y1', 'X2', 'Y2'),
                        help='a Set-of-Mark mark: the box is painted with '
                        'its number and the placeholder becomes "[n]"; ' +
                        region_help)
    parser.add_argument('--out-dir', default='outputs',
                        help='where vis/*.png is written')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--max-new-tokens', type=int)
    parser.add_argument('--do-sample', action='store_true')
    parser.add_argument('--temperature', type=float)
    parser.add_argument('--seed', type=int, help='sampling seed')
    args = parser.parse_args(argv)
    if not hasattr(args, 'regions'):
        args.regions = []
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    inferencer = GroundingInferencer(
        args.config, weights=args.weights, device=args.device)
    result = inferencer(
        args.image,
        args.prompt,
        **region_kwargs(args.regions),
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
