"""Set-of-Mark prompts: numbered marks painted on the image, cited in text.

LLaVA-G (paper §2.4) supports marks as visual prompts without encoding
them: each marked region is painted on the image (a translucent colour
over its mask, its outline and its number), and the text refers to the
number, so the LLM reads the mark from the pixels. The Semantic-SAM prompt
encoder therefore never sees a ``mark`` (it raises on one); this transform
turns every ``mark`` prompt of :class:`SampleVisualPrompts` into paint and
text before :class:`FormatGroundedConversation`.
"""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmgrounding.registry import TRANSFORMS
from mmgrounding.structures import GroundingDataError
from .conversation import _REGION_RE

#: BGR colours of marks 1, 2, ... (cycled).
MARK_COLORS = ((60, 20, 220), (75, 180, 60), (200, 130, 0), (0, 140, 255),
               (180, 30, 145), (240, 240, 70), (48, 130, 245), (128, 128, 0))


@TRANSFORMS.register_module()
class PaintMarks(BaseTransform):
    """Paint every ``mark`` prompt on ``img`` and cite its number in the text.

    For the i-th mark (numbered from 1 in prompt order) with mask M (in
    image pixels, from ``visual_prompts[k]['mask']``):

    - pixels of M are blended with the mark's colour (``alpha``), M's outline
      is drawn, and the number is written at the point of M farthest from
      its border (white on a filled box of the colour);
    - the k-th region placeholder of the conversation (``<obj>``,
      ``<bbox>`` or ``<region>``; the k-th placeholder is ``regions[k]``) is
      replaced by ``mark_format.format(i)`` (default ``'[1]'``); phrase
      spans of that turn after it are shifted accordingly;
    - ``regions[k]`` and ``visual_prompts[k]`` are removed (they have no
      placeholder left), and ``painted_marks`` records ``number``,
      ``instance_id`` and the mask's ``bbox`` (xyxy) of each mark.

    Needs: ``img`` (H x W x 3 uint8), ``visual_prompts`` (after
    ``SampleVisualPrompts``), ``conversations``, ``regions``. Place it
    after ``SampleVisualPrompts`` and before ``FormatGroundedConversation``.

    Args:
        mark_format: text that cites mark number i.
        alpha: opacity of the mask colour.
        outline: outline thickness in pixels (0 = none).
        font_scale: OpenCV font scale; None = from the image size.
    """

    def __init__(self,
                 mark_format: str = '[{}]',
                 alpha: float = 0.4,
                 outline: int = 2,
                 font_scale: Optional[float] = None) -> None:
        if '{}' not in mark_format:
            raise ValueError(f"mark_format needs a '{{}}' for the number, "
                             f'got {mark_format!r}')
        if not 0 <= alpha <= 1:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}')
        self.mark_format = mark_format
        self.alpha = alpha
        self.outline = outline
        self.font_scale = font_scale

    # ------------------------------------------------------------ paint
    def _label_point(self, mask: np.ndarray) -> Tuple[int, int]:
        """(x, y) of the mask pixel farthest from the mask's border."""
        dist = cv2.distanceTransform(
            np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return int(x), int(y)

    def paint(self, img: np.ndarray, mask: np.ndarray, number: int
              ) -> np.ndarray:
        """``img`` with mark ``number`` painted over ``mask`` (a copy)."""
        out = img.copy()
        color = np.array(MARK_COLORS[(number - 1) % len(MARK_COLORS)],
                         dtype=np.float32)
        sel = mask.astype(bool)
        out[sel] = (out[sel].astype(np.float32) * (1 - self.alpha) +
                    color * self.alpha).round().clip(0, 255).astype(np.uint8)
        if self.outline > 0:
            contours, _ = cv2.findContours(
                sel.astype(np.uint8), cv2.RETR_EXTERNAL,
                cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(out, contours, -1, color.tolist(), self.outline)
        text = str(number)
        scale = self.font_scale or max(0.3, min(img.shape[:2]) / 500)
        thick = max(1, int(round(scale * 2)))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                         scale, thick)
        x, y = self._label_point(sel)
        x0, y0 = max(0, x - tw // 2 - 1), max(0, y - th // 2 - 1)
        x1 = min(img.shape[1] - 1, x0 + tw + 2)
        y1 = min(img.shape[0] - 1, y0 + th + base + 2)
        cv2.rectangle(out, (x0, y0), (x1, y1), color.tolist(), -1)
        cv2.putText(out, text, (x0 + 1, y0 + th + 1),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
        return out

    # ------------------------------------------------------------- text
    @staticmethod
    def _placeholders(turns: Sequence[dict]) -> List[Tuple[int, int, int]]:
        """(turn, start, end) of every region placeholder, in order."""
        found = []
        for t in range(0, len(turns), 2):
            for m in _REGION_RE.finditer(turns[t]['text']):
                found.append((t, m.start(), m.end()))
        return found

    def transform(self, results: dict) -> dict:
        prompts = list(results.get('visual_prompts') or [])
        marks = [k for k, p in enumerate(prompts) if p.get('type') == 'mark']
        if not marks:
            return results
        regions = list(results.get('regions') or [])
        turns = [dict(t) for t in results['conversations']]
        places = self._placeholders(turns)
        if not len(places) == len(regions) == len(prompts):
            raise GroundingDataError.from_results(
                results, 'regions',
                f'{len(places)} region placeholders, {len(regions)} regions '
                f'and {len(prompts)} visual prompts must be equal to paint '
                'marks')
        img = results['img']
        painted = []
        for number, k in enumerate(marks, 1):
            mask = prompts[k].get('mask')
            if mask is None or tuple(np.shape(mask)) != tuple(img.shape[:2]):
                raise GroundingDataError.from_results(
                    results, f'visual_prompts[{k}].mask',
                    f'a mark needs a mask of the image size {img.shape[:2]}'
                    f', got {None if mask is None else np.shape(mask)}')
            mask = np.asarray(mask) > 0
            if not mask.any():
                raise GroundingDataError.from_results(
                    results, f'visual_prompts[{k}].mask',
                    'mark mask is empty')
            img = self.paint(img, mask, number)
            ys, xs = np.nonzero(mask)
            painted.append(
                dict(number=number,
                     instance_id=prompts[k].get('instance_id'),
                     bbox=[int(xs.min()), int(ys.min()),
                           int(xs.max()) + 1, int(ys.max()) + 1]))
        # rewrite text from the last placeholder backwards: earlier offsets
        # stay valid
        phrases = [dict(p) for p in (results.get('phrases') or [])]
        for number, k in reversed(list(enumerate(marks, 1))):
            turn, start, end = places[k]
            cite = self.mark_format.format(number)
            text = turns[turn]['text']
            turns[turn]['text'] = text[:start] + cite + text[end:]
            delta = len(cite) - (end - start)
            for p in phrases:
                if p['turn'] != turn:
                    continue
                if p['start'] >= end:
                    p['start'] += delta
                    p['end'] += delta
                elif p['end'] > start:
                    p['end'] += delta  # the phrase contains the placeholder
        keep = [k for k in range(len(prompts)) if k not in set(marks)]
        results['img'] = img
        results['conversations'] = turns
        if 'phrases' in results:
            results['phrases'] = phrases
        results['regions'] = [regions[k] for k in keep]
        results['visual_prompts'] = [prompts[k] for k in keep]
        results['painted_marks'] = painted
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(mark_format='
                f'{self.mark_format!r}, alpha={self.alpha})')


__all__ = ['PaintMarks', 'MARK_COLORS']
