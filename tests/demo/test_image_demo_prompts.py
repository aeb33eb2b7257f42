"""``demo/image_demo.py`` with every prompt kind, for LLaVA-G ``<obj>`` and
GLaMM ``<bbox>``: the PNG shows each prompt where it was given.

Tiny random models (the answer is noise; the drawing is what is checked):
GLaMM with the Semantic-SAM encoder serving ``<bbox>`` (the swap config
of ``configs/swaps/``) and the tiny LLaVA-G with the tiny Semantic-SAM
``<obj>`` encoder. A uniform grey image makes the expected pixels exact:
prompts are drawn in ``PROMPT_COLOUR`` (gold, not a mask colour) and a mark
is painted as ``PaintMarks`` paints it (alpha 0.4, colour 1).
"""
import os
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch

from mmgrounding.datasets.synthetic import generate_world
from mmgrounding.datasets.transforms.paint_marks import MARK_COLORS
from mmgrounding.testing import load_script
from mmgrounding.visualization.grounding_visualizer import PROMPT_COLOUR

ROOT = Path(__file__).resolve().parents[2]
H, W, GREY = 96, 128, 128
POINT = (30.0, 40.0)
SCRIBBLE = [(60.0, 10.0), (90.0, 22.0), (115.0, 14.0)]
BOX = (10.0, 60.0, 50.0, 90.0)
MARK = (70.0, 48.0, 122.0, 92.0)
GLAMM = ROOT / 'configs/swaps/' \
    'glamm_llama-tiny_clip-tiny_sam-tiny_semsam-bbox_1000it_synthetic-' \
    'regcap.py'
LLAVA_G = ROOT / 'configs/llava_grounding/' \
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic.py'


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo_prompt_world')
    generate_world(str(root / 'data' / 'synthetic'), num_images=4, seed=1)
    img = np.full((H, W, 3), GREY, np.uint8)
    mmcv.imwrite(img, str(root / 'grey.png'))
    # tiny LLaVA-G + the tiny Semantic-SAM <obj> encoder (random weights)
    # (its Swin, pixel decoder and DINO decoder are the tiny OpenSeeD's)
    parts = ', '.join(f'{k}={{{{_base_.tiny_openseed_head.{k}}}}}'
                      for k in ('backbone', 'pixel_decoder', 'decoder'))
    (root / 'llava_g_vp.py').write_text(
        f"_base_ = ['{LLAVA_G}']\n"
        'model = dict(\n'
        "    data_preprocessor=dict(prompt_views=('clip', 'grounding')),\n"
        "    prompt_encoder=dict(type='SemanticSAMPromptEncoder', lm_dim=128,"
        f' embed_dims=32, num_points=256, {parts}))\n')
    return root


def _gold(png: np.ndarray) -> np.ndarray:
    """[H, W] True where the image panel shows the prompt colour, also
    anti-aliased over the grey (R >= 180, 150 <= G < R, B <= 80: neither
    the grey, nor a palette colour, nor a palette mask over the grey)."""
    assert PROMPT_COLOUR == (255, 215, 0)
    r, g, b = np.moveaxis(png[:H, :W].astype(int), -1, 0)
    return (r >= 180) & (g >= 150) & (g < r) & (b <= 80)


def _near(mask: np.ndarray, x: float, y: float, r: int = 2) -> bool:
    x, y = int(round(x)), int(round(y))
    return bool(mask[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].any())


def _on_segments(points, step: float = 2.0):
    out = []
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        n = max(2, int(np.hypot(x1 - x0, y1 - y0) / step))
        out += [(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
                for t in np.linspace(0, 1, n)]
    return out


@pytest.mark.parametrize('model, placeholder', [('glamm', '<bbox>'),
                                                ('llava_g', '<obj>')])
def test_every_prompt_kind_is_drawn(model, placeholder, world, tmp_path,
                                    monkeypatch, capsys):
    torch.set_num_threads(1)
    monkeypatch.chdir(world)
    config = str(GLAMM if model == 'glamm' else world / 'llava_g_vp.py')
    demo = load_script('demo/image_demo.py')
    p = placeholder
    torch.manual_seed(0)
    result = demo.main([
        str(world / 'grey.png'), config, '--prompt',
        f'Is {p} next to {p}? What about {p} and {p}?',
        '--point', *map(str, POINT),
        '--scribble', *[str(v) for xy in SCRIBBLE for v in xy],
        '--box', *map(str, BOX),
        '--mark', *map(str, MARK),
        '--out-dir', str(tmp_path), '--max-new-tokens', '4'
    ])
    assert 'answer:' in capsys.readouterr().out
    png = mmcv.imread(result['vis_file'], channel_order='rgb')
    gold = _gold(png)
    # the click: a dot at the point
    assert _near(gold, *POINT), 'no click drawn'
    # the scribble: a polyline through its points
    hits = [_near(gold, x, y) for x, y in _on_segments(SCRIBBLE)]
    assert np.mean(hits) > 0.8, np.mean(hits)
    # the box: its four edges
    x1, y1, x2, y2 = BOX
    edges = _on_segments([(x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1)])
    hits = [_near(gold, x, y) for x, y in edges]
    assert np.mean(hits) > 0.8, np.mean(hits)
    # the mark is painted (the number is the model's text; no gold)
    covered = np.zeros((H, W), bool)
    for mask in result['masks']:
        covered |= mask
    colour = np.array(MARK_COLORS[0][::-1], dtype=float)  # BGR -> RGB
    expected = np.round(GREY * 0.6 + colour * 0.4)
    mx1, my1, mx2, my2 = map(int, MARK)
    inner = np.zeros((H, W), bool)
    inner[my1 + 4:my1 + 12, mx1 + 4:mx2 - 4] = True  # clear of the number
    inner &= ~covered
    assert inner.sum() > 50, 'mark interior covered by predicted masks'
    pixels = png[:H, :W][inner].astype(float)
    assert np.abs(pixels - expected).max() <= 2, (pixels.mean(0), expected)
    assert not gold[inner].any()
    # nothing gold away from the prompts and their numbers
    allowed = np.zeros((H, W), bool)
    for x, y in [POINT] + _on_segments(SCRIBBLE) + edges:
        xi, yi = int(round(x)), int(round(y))
        allowed[max(0, yi - 4):yi + 14, max(0, xi - 4):xi + 14] = True
    assert not (gold & ~allowed).any(), np.argwhere(gold & ~allowed)[:5]
    # far from every prompt the image is the plain grey (or a mask colour)
    assert (png[:H, :W][~allowed & ~covered & (np.arange(W)[None] < 8)]
            == GREY).all()
