"""Scenes of the synthetic grounding world: coloured shapes on a plain canvas.

A scene is 2-4 shapes (circle, square, triangle) in one of six colours and two
sizes, drawn in order so that a later shape occludes an earlier one. Every
shape's full outline is a polygon rasterised by pycocotools, so the polygon
written for an unoccluded shape decodes to exactly its mask; the mask kept for
every shape is its *visible* pixels.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from pycocotools import mask as mask_utils

COLORS: Dict[str, Tuple[int, int, int]] = {
    'red': (220, 40, 40),
    'green': (40, 165, 70),
    'blue': (40, 90, 225),
    'yellow': (235, 200, 25),
    'purple': (145, 65, 190),
    'orange': (250, 130, 20),
}
SHAPES: Tuple[str, ...] = ('circle', 'square', 'triangle')
# Nominal extent (side or diameter) of each size class, as a fraction of the
# image side; each shape is jittered by +-8 % around it.
SIZES: Dict[str, float] = {'small': 0.13, 'large': 0.24}
BACKGROUND: Tuple[int, int, int] = (236, 236, 236)
CATEGORY_IDS: Dict[str, int] = {name: i + 1 for i, name in enumerate(SHAPES)}
MIN_VISIBLE_FRACTION = 0.6
# Probability that a new shape is placed against an earlier one (occlusion).
OVERLAP_PROB = 0.35
CIRCLE_VERTICES = 32


@dataclass
class Shape:
    """One drawn object.

    Attributes:
        shape, color, size: its attribute words.
        polygon: flat ``[x1, y1, x2, y2, ...]`` outline in pixels (COCO order).
        full: ``(H, W)`` bool mask of the whole shape.
        visible: ``(H, W)`` bool mask of the pixels left after occlusion.
    """

    shape: str
    color: str
    size: str
    polygon: List[float]
    full: np.ndarray
    visible_init: Optional[np.ndarray] = None
    ann_id: int = -1
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self._visible = self.visible_init
        self._bbox = None

    @property
    def visible(self) -> np.ndarray:
        return self._visible

    @visible.setter
    def visible(self, mask: np.ndarray) -> None:
        self._visible = mask
        self._bbox = None  # the box follows the mask

    @property
    def occluded(self) -> bool:
        return bool((self.full & ~self.visible).any())

    @property
    def bbox_xyxy(self) -> Tuple[float, float, float, float]:
        """Tight box of the visible pixels, ``x2``/``y2`` exclusive (cached)."""
        if self._bbox is None:
            rows, cols = self._visible.any(1), self._visible.any(0)
            ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
            self._bbox = (float(xs[0]), float(ys[0]), float(xs[-1] + 1),
                          float(ys[-1] + 1))
        return self._bbox

    @property
    def center(self) -> Tuple[float, float]:
        """Centre of the visible box; spatial relations compare these."""
        x1, y1, x2, y2 = self.bbox_xyxy
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0

    def words(self, attrs=('size', 'color')) -> str:
        """Attribute words in fixed order (size, colour) plus the shape."""
        parts = [getattr(self, a) for a in ('size', 'color') if a in attrs]
        return ' '.join(parts + [self.shape])


def shape_polygon(kind: str, cx: float, cy: float, extent: float) -> List[float]:
    """Outline of a shape centred at ``(cx, cy)``, rounded to 0.1 px."""
    h = extent / 2.0
    if kind == 'square':
        pts = [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h),
               (cx - h, cy + h)]
    elif kind == 'triangle':
        pts = [(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    elif kind == 'circle':
        angles = np.arange(CIRCLE_VERTICES) * (2 * np.pi / CIRCLE_VERTICES)
        pts = [(cx + h * np.cos(a), cy + h * np.sin(a)) for a in angles]
    else:
        raise ValueError(f'unknown shape kind {kind!r}; expected one of {SHAPES}')
    return [round(float(v), 1) for p in pts for v in p]


def rasterize(polygon: List[float], height: int, width: int) -> np.ndarray:
    """Decode a COCO polygon to an ``(H, W)`` bool mask with pycocotools."""
    rles = mask_utils.frPyObjects([polygon], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def sample_scene(rng: np.random.Generator, image_size: int,
                 max_tries: int = 60) -> List[Shape]:
    """Sample 2-4 shapes in draw order (later ones on top).

    Each new shape is placed at random; a placement is rejected when it would
    leave an earlier shape with less than ``MIN_VISIBLE_FRACTION`` of its area
    visible. With probability ``OVERLAP_PROB`` a shape is placed against an
    earlier one so that it partly covers it, and with probability 0.3 it copies
    the colour and kind of an earlier one, so that size or a spatial relation
    is needed to tell them apart.
    """
    colors, sizes = list(COLORS), list(SIZES)
    n_target = int(rng.integers(2, 5))
    shapes: List[Shape] = []
    for _ in range(n_target):
        for _try in range(max_tries):
            if shapes and rng.random() < 0.3:
                ref = _pick(rng, shapes)
                kind, color = ref.shape, ref.color
            else:
                kind, color = _pick(rng, SHAPES), _pick(rng, colors)
            size = _pick(rng, sizes)
            extent = SIZES[size] * image_size * float(rng.uniform(0.92, 1.08))
            half = extent / 2.0
            lo, hi = half + 1, image_size - half - 1
            if shapes and rng.random() < OVERLAP_PROB:
                # Next to an earlier shape, so that it partly covers it.
                ref = _pick(rng, shapes)
                x1, y1, x2, y2 = ref.bbox_xyxy
                reach = 0.5 * (max(x2 - x1, y2 - y1) + extent)
                ang = float(rng.uniform(0, 2 * np.pi))
                dist = reach * float(rng.uniform(0.55, 0.95))
                cx = float(np.clip((x1 + x2) / 2 + dist * np.cos(ang), lo, hi))
                cy = float(np.clip((y1 + y2) / 2 + dist * np.sin(ang), lo, hi))
            else:
                cx = float(rng.uniform(lo, hi))
                cy = float(rng.uniform(lo, hi))
            poly = shape_polygon(kind, cx, cy, extent)
            full = rasterize(poly, image_size, image_size)
            ok = all((s.visible & ~full).sum() >=
                     MIN_VISIBLE_FRACTION * s.full.sum() for s in shapes)
            if ok:
                for s in shapes:
                    s.visible = s.visible & ~full
                shapes.append(Shape(kind, color, size, poly, full, full.copy()))
                break
    return shapes


def render(shapes: List[Shape], image_size: int) -> np.ndarray:
    """Paint shapes in order on the background; returns ``(H, W, 3)`` RGB uint8."""
    img = np.empty((image_size, image_size, 3), dtype=np.uint8)
    img[...] = BACKGROUND
    for s in shapes:
        img[s.full] = COLORS[s.color]
    return img


def encode_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE with ``counts`` as str (JSON-serialisable)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'counts': rle['counts'].decode('ascii'), 'size': [int(v) for v in rle['size']]}


def mask_bbox_area(mask: np.ndarray) -> Tuple[List[float], int]:
    """COCO ``[x, y, w, h]`` box and pixel area of a binary mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return [float(v) for v in mask_utils.toBbox(rle)], int(mask_utils.area(rle))
