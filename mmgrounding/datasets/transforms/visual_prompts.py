"""Sample visual prompts (click, box, scribble, mark) for referred regions."""
from typing import Dict, Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmgrounding.registry import TRANSFORMS
from mmgrounding.structures import GroundingDataError
from .utils import sample_rng

PROMPT_TYPES = ('click', 'box', 'scribble', 'mark')


@TRANSFORMS.register_module()
class SampleVisualPrompts(BaseTransform):
    """Draw one visual prompt per ``regions[k]`` from its instance mask.

    Used for LLaVA-G ``<obj>`` (all four kinds, Semantic-SAM style) and for
    GLaMM ``<bbox>`` regions (``prompt_types=dict(box=1)``). The kind of each
    region is drawn with probabilities proportional to ``prompt_types``; all
    draws come from a generator seeded by ``seed`` and the sample index, so a
    sample gets the same prompts in every epoch and worker.

    The region's mask is ``gt_masks[instance_id]`` (needs
    :class:`LoadGroundingAnnotations`); a region without an instance, or whose
    instance has no mask, uses its filled box instead.

    Each entry of the added ``visual_prompts`` list is a dict with ``type``,
    ``instance_id`` (int or None) and, in original-image pixels:

    - ``click``: ``points`` float32 [1, 2] (x, y), the centre of a mask pixel;
    - ``box``: ``box`` float32 [4] xyxy (the region's box, or the mask's box,
      optionally jittered by ``box_jitter`` x box size);
    - ``scribble``: ``points`` float32 [K, 2], mask-pixel centres ordered
      along the mask's main axis, and ``mask`` float32 [H, W], the polyline
      through them (``scribble_width`` px) clipped to the instance mask;
    - ``mark``: ``mask`` float32 [H, W], the instance mask.

    Args:
        prompt_types (dict): Kind -> non-negative weight.
        seed (int): Seed of the draws.
        num_scribble_points (int): Points per scribble.
        scribble_width (int): Line width of the rasterised scribble.
        box_jitter (float): Std of box-corner noise, relative to box size.
    """

    def __init__(self,
                 prompt_types: Optional[Dict[str, float]] = None,
                 seed: int = 0,
                 num_scribble_points: int = 5,
                 scribble_width: int = 3,
                 box_jitter: float = 0.0) -> None:
        prompt_types = dict(prompt_types or dict(
            click=1.0, box=1.0, scribble=1.0, mark=1.0))
        unknown = set(prompt_types) - set(PROMPT_TYPES)
        if unknown:
            raise ValueError(f'unknown prompt types {sorted(unknown)}; '
                             f'expected some of {PROMPT_TYPES}')
        weights = np.array(list(prompt_types.values()), dtype=np.float64)
        if np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(f'prompt_types weights must be >= 0 with a '
                             f'positive sum; got {prompt_types}')
        self.prompt_types = prompt_types
        self._kinds = list(prompt_types)
        self._probs = weights / weights.sum()
        self.seed = seed
        self.num_scribble_points = num_scribble_points
        self.scribble_width = scribble_width
        self.box_jitter = box_jitter

    def _region_mask(self, results: dict, k: int, region: dict,
                     h: int, w: int):
        inst = region.get('instance_id')
        gt_masks = results.get('gt_masks')
        valid = results.get('gt_mask_valid')
        if inst is not None:
            if gt_masks is None or not 0 <= inst < len(gt_masks):
                raise GroundingDataError.from_results(
                    results, f'regions[{k}].instance_id',
                    f'instance {inst} unknown (have '
                    f'{0 if gt_masks is None else len(gt_masks)} decoded '
                    'instances; run LoadGroundingAnnotations first)')
            if valid is None or valid[inst]:
                return gt_masks.masks[inst].astype(bool)
        box = region.get('bbox')
        if box is None and inst is not None and 'gt_bboxes' in results:
            box = results['gt_bboxes'].tensor[inst].tolist()
        if box is None:
            raise GroundingDataError.from_results(
                results, f'regions[{k}]', 'region has no mask and no bbox')
        mask = np.zeros((h, w), dtype=bool)
        x1, y1 = np.floor(np.asarray(box[:2])).astype(int).clip(0)
        x2, y2 = np.ceil(np.asarray(box[2:])).astype(int)
        mask[y1:y2, x1:x2] = True
        if not mask.any():
            raise GroundingDataError.from_results(
                results, f'regions[{k}].bbox', f'box {box} covers no pixel')
        return mask

    def _box(self, region: dict, mask: np.ndarray, rng, h: int,
             w: int) -> np.ndarray:
        if region.get('bbox') is not None:
            box = np.asarray(region['bbox'], dtype=np.float64)
        else:
            ys, xs = np.nonzero(mask)
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
                           dtype=np.float64)
        if self.box_jitter > 0:
            size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
            box = box + rng.normal(0, self.box_jitter, 4) * size
            box = np.clip(box, 0, [w, h, w, h])
            box[2:] = np.maximum(box[2:], box[:2] + 1)
        return box.astype(np.float32)

    def _scribble(self, mask: np.ndarray, rng):
        ys, xs = np.nonzero(mask)
        n = min(self.num_scribble_points, len(xs))
        pick = rng.choice(len(xs), size=n, replace=False)
        pts = np.stack([xs[pick], ys[pick]], axis=1).astype(np.float64) + 0.5
        coords = np.stack([xs, ys], axis=1).astype(np.float64)
        coords -= coords.mean(axis=0)
        if len(coords) > 1:
            _, vecs = np.linalg.eigh(coords.T @ coords)
            axis = vecs[:, -1]
        else:
            axis = np.array([1.0, 0.0])
        pts = pts[np.argsort(pts @ axis, kind='stable')]
        line = np.zeros(mask.shape, dtype=np.uint8)
        cv2.polylines(line, [np.floor(pts).astype(np.int32).reshape(-1, 1, 2)],
                      False, 1, thickness=self.scribble_width)
        line = (line.astype(bool) & mask).astype(np.float32)
        return pts.astype(np.float32), line

    def transform(self, results: dict) -> dict:
        regions = results.get('regions') or []
        if 'gt_masks' in results:
            h, w = results['gt_masks'].height, results['gt_masks'].width
        else:
            shape = results.get('ori_shape') or (results['height'],
                                                 results['width'])
            h, w = int(shape[0]), int(shape[1])
        rng = sample_rng(results, self.seed, salt=2)
        prompts = []
        for k, region in enumerate(regions):
            mask = self._region_mask(results, k, region, h, w)
            kind = self._kinds[int(rng.choice(len(self._kinds),
                                              p=self._probs))]
            prompt = dict(type=kind, instance_id=region.get('instance_id'))
            if kind == 'click':
                ys, xs = np.nonzero(mask)
                i = int(rng.integers(len(xs)))
                prompt['points'] = np.array([[xs[i] + 0.5, ys[i] + 0.5]],
                                            dtype=np.float32)
            elif kind == 'box':
                prompt['box'] = self._box(region, mask, rng, h, w)
            elif kind == 'scribble':
                prompt['points'], prompt['mask'] = self._scribble(mask, rng)
            else:
                prompt['mask'] = mask.astype(np.float32)
            prompts.append(prompt)
        results['visual_prompts'] = prompts
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prompt_types='
                f'{self.prompt_types}, seed={self.seed})')
