"""Draws grounded answers: masks and boxes in colour, each phrase in its
colour, and the sample's visual prompts (boxes, clicks, scribbles) on top."""
import textwrap
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmdet.visualization import DetLocalVisualizer
from mmengine.dist import master_only

from mmgrounding.registry import VISUALIZERS

PALETTE: List[Tuple[int, int, int]] = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60),
    (250, 190, 190), (0, 128, 128), (170, 110, 40), (128, 0, 0)
]


#: colour of the visual prompts (not in PALETTE, so a prompt is never taken
#: for a mask)
PROMPT_COLOUR: Tuple[int, int, int] = (255, 215, 0)


def sample_prompts(data_sample) -> List[Tuple[str, np.ndarray]]:
    """The visual prompts of a sample, in original pixels, as
    ``(kind, array)``: ``('box', [4] xyxy)``, ``('click', [2] xy)``,
    ``('scribble', [K, 2])``. Read from ``visual_prompts`` when present
    (marks are painted into the image, not listed), else the
    ``region_bboxes`` (GLaMM ``<bbox>``)."""
    def arr(value):
        if hasattr(value, 'cpu'):
            value = value.cpu().numpy()
        return np.asarray(value, dtype=np.float32)

    prompts = data_sample.get('visual_prompts', None)
    out = []
    if prompts is not None:
        for p in prompts:
            kind = p.get('type')
            if kind == 'box' and p.get('box') is not None:
                out.append(('box', arr(p['box']).reshape(4)))
            elif kind == 'click' and p.get('points') is not None:
                out.append(('click', arr(p['points']).reshape(-1, 2)[0]))
            elif kind == 'scribble' and p.get('points') is not None:
                out.append(('scribble', arr(p['points']).reshape(-1, 2)))
        return out
    boxes = data_sample.get('region_bboxes', None)
    if boxes is not None:
        out = [('box', b) for b in arr(getattr(boxes, 'tensor',
                                               boxes)).reshape(-1, 4)]
    return out


def _to_numpy_masks(masks) -> np.ndarray:
    """Return masks as a bool array [M, H, W] (BitmapMasks or tensors)."""
    if masks is None:
        return np.zeros((0, 1, 1), dtype=bool)
    if hasattr(masks, 'to_ndarray'):
        return masks.to_ndarray().astype(bool)
    if hasattr(masks, 'cpu'):
        masks = masks.cpu().numpy()
    return np.asarray(masks).astype(bool)


@VISUALIZERS.register_module()
class GroundingVisualizer(DetLocalVisualizer):
    """Visualizer for grounded conversations and referring segmentation.

    The image panel shows each grounding target (mask, and its box) in its own
    colour; a text panel below lists the phrases in the same colours and the
    caption or answer, so a reader can check which words went with which mask.
    Ground truth and prediction are drawn side by side. The sample's visual
    prompts (:func:`sample_prompts`) are drawn on both panels in
    ``PROMPT_COLOUR``, numbered in placeholder order: boxes as rectangles,
    clicks as dots, scribbles as polylines.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 text_panel_height: int = 96,
                 text_panel_width: int = 320,
                 max_lines: int = 12,
                 alpha: float = 0.5,
                 **kwargs) -> None:
        super().__init__(name=name, alpha=alpha, **kwargs)
        self.text_panel_height = text_panel_height
        self.text_panel_width = text_panel_width
        self.max_lines = max_lines

    def _draw_prompts(self, prompts: Sequence[Tuple[str, np.ndarray]]
                      ) -> None:
        """Draw visual prompts on the current image (after the masks)."""
        colour = [PROMPT_COLOUR]
        for k, (kind, arr) in enumerate(prompts):
            if kind == 'box':
                self.draw_bboxes(arr[None], edge_colors=colour,
                                 line_widths=2)
                anchor = arr[:2]
            elif kind == 'click':
                self.draw_circles(arr[None], np.array([3.0]),
                                  edge_colors=colour, face_colors=colour,
                                  line_widths=1)
                anchor = arr
            else:
                # one segment per pair of consecutive points: [N - 1, 2]
                self.draw_lines(
                    np.stack([arr[:-1, 0], arr[1:, 0]], 1),
                    np.stack([arr[:-1, 1], arr[1:, 1]], 1),
                    colors=colour, line_widths=2)
                anchor = arr[0]
            self.draw_texts(str(k + 1), np.asarray(anchor) + 2,
                            colors=colour, font_sizes=8)

    def _draw_panel(self, image: np.ndarray, masks: np.ndarray,
                    phrases: Sequence[str], text: str,
                    prompts: Sequence[Tuple[str, np.ndarray]] = ()
                    ) -> np.ndarray:
        """Return the image with masks (and prompts) plus a text panel
        underneath."""
        self.set_image(image)
        h, w = image.shape[:2]
        for i, mask in enumerate(masks):
            if mask.shape != (h, w) or not mask.any():
                continue
            colour = PALETTE[i % len(PALETTE)]
            self.draw_binary_masks(mask[None], colors=[colour],
                                   alphas=self.alpha)
            ys, xs = np.nonzero(mask)
            self.draw_bboxes(
                np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]),
                edge_colors=[colour], line_widths=1)
        if prompts:
            self._draw_prompts(prompts)
        drawn = self.get_image()
        width = max(w, self.text_panel_width)
        lines = textwrap.wrap(text or '', width=width // 6)[:self.max_lines]
        line_h, font = 11, 8
        panel_h = max(self.text_panel_height,
                      line_h * (len(phrases) + len(lines)) + 6)
        self.set_image(np.full((panel_h, width, 3), 255, np.uint8))
        y = 2
        for i, phrase in enumerate(phrases):
            self.draw_texts(f'[{i}] {phrase}', np.array([2, y]),
                            colors=[PALETTE[i % len(PALETTE)]],
                            font_sizes=font)
            y += line_h
        for line in lines:
            self.draw_texts(line, np.array([2, y]), colors='black',
                            font_sizes=font)
            y += line_h
        panel = self.get_image()
        width = max(drawn.shape[1], panel.shape[1])
        pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)),
                               constant_values=255)
        return np.concatenate([pad(drawn), pad(panel)], axis=0)

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample=None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       pred_score_thr: float = 0.0,
                       step: int = 0) -> None:
        """Draw ground truth and prediction of one sample side by side."""
        image = image.clip(0, 255).astype(np.uint8)
        panels = []
        prompts = sample_prompts(data_sample) if data_sample is not None \
            else []
        if data_sample is not None and draw_gt and 'gt_instances' in \
                data_sample:
            gt_masks = _to_numpy_masks(data_sample.gt_instances.get('masks'))
            captions = data_sample.metainfo.get('gt_captions') or ['']
            panels.append(
                self._draw_panel(image, gt_masks,
                                 data_sample.metainfo.get('gt_phrases', []),
                                 'GT: ' + captions[0], prompts))
        if data_sample is not None and draw_pred and 'pred_instances' in \
                data_sample:
            pred = data_sample.pred_instances
            masks = _to_numpy_masks(pred.get('masks'))
            if 'scores' in pred and len(masks):
                keep = (pred.scores.cpu().numpy() >= pred_score_thr)
                masks = masks * keep[:, None, None]
            panels.append(
                self._draw_panel(image, masks,
                                 data_sample.get('pred_phrases', []),
                                 'Pred: ' + data_sample.get('pred_text', ''),
                                 prompts))
        if not panels:
            panels.append(image)
        height = max(p.shape[0] for p in panels)
        panels = [
            np.pad(p, ((0, height - p.shape[0]), (0, 4), (0, 0)),
                   constant_values=255) for p in panels
        ]
        drawn = np.concatenate(panels, axis=1)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            import mmcv
            mmcv.imwrite(drawn[..., ::-1], out_file)
        else:
            self.add_image(name, drawn, step)
