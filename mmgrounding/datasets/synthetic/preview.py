"""Human-readable preview of a generated world: printed samples and a grid
image with every visible mask outlined and the expressions listed
under each image (``preview.png``, what ``make demo`` shows first)."""
import os
import textwrap
from typing import Callable, List

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Distinct outline colours for instance indices (not the world colours).
_TINTS = [(0, 0, 0), (230, 0, 230), (0, 170, 170), (110, 110, 110)]


def print_samples(samples: List[dict], log: Callable[[str], None]) -> None:
    """Print each sample's referring expressions and grounded caption."""
    for s in samples:
        log(f"[{s['split']}] image {s['img_id']:012d}: {s['caption']}")
        for o, sents in s['refs']:
            log(f"    #{o.ann_id} {o.words()}: " + ' | '.join(sents))


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it."""
    p = np.pad(mask, 1)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def _tile(sample: dict, scale: int, text_h: int, font) -> Image.Image:
    """Image (upscaled) with each visible mask outlined and numbered, then
    its expressions and GCG caption below."""
    from .scene import render
    objs = sample['objs']
    size = objs[0].full.shape[0]
    big = np.repeat(np.repeat(render(objs, size), scale, 0), scale, 1)
    for k, o in enumerate(objs):
        vis = np.repeat(np.repeat(o.visible, scale, 0), scale, 1)
        edge = _boundary(vis)
        edge |= _boundary(vis & ~edge)  # 2 px outline
        big[edge] = _TINTS[k % len(_TINTS)]
    tile = Image.new('RGB', (size * scale, size * scale + text_h), (255, 255, 255))
    tile.paste(Image.fromarray(big), (0, 0))
    draw = ImageDraw.Draw(tile)
    for k, o in enumerate(objs):
        x1, y1 = o.bbox_xyxy[0] * scale, o.bbox_xyxy[1] * scale
        draw.text((x1 + 3, y1 + 2), str(k), fill=_TINTS[k % len(_TINTS)], font=font)
    lines = []
    for o, sents in sample['refs']:
        lines += textwrap.wrap(f'{objs.index(o)}: ' + ' | '.join(sents), 42)
    lines += textwrap.wrap('GCG: ' + sample['caption'], 42)
    y = size * scale + 2
    for line in lines:
        if y > tile.height - 11:
            break
        draw.text((2, y), line, fill=(0, 0, 0), font=font)
        y += 11
    return tile


def write_preview(samples: List[dict], out: str, image_size: int,
                  cols: int = 4) -> str:
    """Write ``{out}/preview.png`` (a grid of tiles); returns its path."""
    if not samples:
        return ''
    scale = max(1, 256 // image_size)
    font = ImageFont.load_default()
    text_h = 132
    tiles = [_tile(s, scale, text_h, font) for s in samples]
    tw, th = tiles[0].size
    cols = min(cols, len(tiles))
    rows = (len(tiles) + cols - 1) // cols
    grid = Image.new('RGB', (cols * (tw + 4), rows * (th + 4)), (200, 200, 200))
    for i, t in enumerate(tiles):
        grid.paste(t, ((i % cols) * (tw + 4), (i // cols) * (th + 4)))
    path = os.path.join(out, 'preview.png')
    grid.save(path, format='PNG', optimize=False, compress_level=6)
    return path
