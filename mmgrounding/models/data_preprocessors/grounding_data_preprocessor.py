"""Batches grounded conversations on the device (docs/data_contract.md §3).

From original-size CHW uint8 RGB images it builds two views:

- CLIP view [B, 3, S, S]: shortest side resized to S (bicubic, antialiased,
  rounded to integers as the PIL-based CLIP processor does) and centre
  cropped to S x S (``clip_mode='crop'``; or a plain square resize with
  ``clip_mode='resize'``), then ``(x / 255 - mean) / std``.
- Grounding view [B, 3, G, G]: longest side resized to G keeping the aspect
  ratio (SAM's ``ResizeLongestSide``: ``int(side * G / longest + 0.5)``,
  bilinear, antialiased, rounded), ``(x - mean) / std`` on 0-255 values, then
  zero-padded at the bottom and right. ``grounding_sizes`` holds the resized
  (h, w) (LongTensor [B, 2]; ``grounding_sizes_host``: the same as a list,
  so heads read them without a device sync).

Token sequences are padded (``input_ids`` with ``pad_token_id``, ``labels``
with -100) to the longest one, on the right for training and on the left for
prediction unless told otherwise; ``attention_mask`` comes from the true
lengths (the pad id may equal a real token such as eos).
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseDataPreprocessor
from torch import Tensor
from torch.nn import functional as F

from mmgrounding.registry import MODELS
from mmgrounding.structures import GroundingDataError
from ..vision_encoders.hf_vision_encoder import CLIP_MEAN, CLIP_STD

SAM_MEAN = (123.675, 116.28, 103.53)
SAM_STD = (58.395, 57.12, 57.375)


def _resize(img: Tensor, size: Tuple[int, int], mode: str,
            round_values: bool) -> Tensor:
    """Resize a float CHW 0-255 image; optionally round like uint8 PIL."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    out = F.interpolate(
        img[None], size=size, mode=mode, align_corners=False,
        antialias=True)[0]
    out = out.clamp(0, 255)
    return out.round() if round_values else out


def shortest_side_resize_shape(height: int, width: int,
                               size: int) -> Tuple[int, int]:
    """(h, w) after resizing the shortest side to ``size`` (CLIP, HF)."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def longest_side_resize_shape(height: int, width: int,
                              size: int) -> Tuple[int, int]:
    """(h, w) after resizing the longest side to ``size`` (SAM)."""
    scale = size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


@MODELS.register_module()
class GroundingDataPreprocessor(BaseDataPreprocessor):
    """Pads tokens and builds the CLIP and grounding views on device.

    Args:
        clip_size: side S of the CLIP view (336 for CLIP-L/14-336).
        clip_mode: ``'crop'`` (shortest side to S + centre crop, the CLIP
            processor's default used by GLaMM) or ``'resize'`` (square).
        clip_mean, clip_std: CLIP statistics on [0, 1] values.
        clip_interpolation: interpolation of the CLIP view.
        grounding_size: side G of the grounding view (SAM: 1024); ``None``
            skips the view.
        grounding_mean, grounding_std: statistics on 0-255 values (SAM's,
            which are also ImageNet's as used by OpenSeeD).
        grounding_interpolation: interpolation of the grounding view.
        round_resized: round resized pixels to integers (PIL behaviour).
        pad_token_id: id used to pad ``input_ids``.
        label_pad_id: value used to pad ``labels``.
        train_padding_side, test_padding_side: default padding side when
            ``training`` is True / False (overridable per call).
        region_box_mode: how ``region_bboxes`` reach the CLIP view:
            ``'view'`` applies the same resize and crop as the image;
            ``'stretch'`` scales x by S / W and y by S / H whatever the crop
            (what GLaMM's region datasets do). Visual prompts always follow
            the view's geometry.
        prompt_views: the image views that prompt encoders read, among
            ``'clip'`` and ``'grounding'``; for each view ``v`` every sample
            with ``region_bboxes`` gains ``region_bboxes_{v}`` and every
            sample with ``visual_prompts`` gains ``visual_prompts_{v}``
            (GLaMM's region encoder reads ``region_bboxes_clip``; a
            prompt encoder on the grounding view reads
            ``visual_prompts_grounding``).
        non_blocking: non-blocking device copies.

    Prompts outside a view: a box partly outside keeps its visible part
    (clamped to the view); a box, click or scribble with NOTHING inside the
    view (e.g. a region beyond the CLIP centre crop) raises
    ``GroundingDataError`` naming the sample, the field and the view, since
    its embedding would describe pixels the encoder never sees. Use
    ``clip_mode='resize'`` or ``region_box_mode='stretch'`` for data whose
    regions lie outside the centre crop.
    """

    def __init__(self,
                 clip_size: int = 336,
                 clip_mode: str = 'crop',
                 clip_mean: Sequence[float] = CLIP_MEAN,
                 clip_std: Sequence[float] = CLIP_STD,
                 clip_interpolation: str = 'bicubic',
                 grounding_size: Optional[int] = 1024,
                 grounding_mean: Sequence[float] = SAM_MEAN,
                 grounding_std: Sequence[float] = SAM_STD,
                 grounding_interpolation: str = 'bilinear',
                 round_resized: bool = True,
                 pad_token_id: int = 0,
                 label_pad_id: int = -100,
                 train_padding_side: str = 'right',
                 test_padding_side: str = 'left',
                 region_box_mode: str = 'view',
                 prompt_views: Sequence[str] = ('clip', ),
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if clip_mode not in ('crop', 'resize'):
            raise ValueError(
                f"clip_mode must be 'crop' or 'resize', got {clip_mode!r}")
        if region_box_mode not in ('view', 'stretch'):
            raise ValueError("region_box_mode must be 'view' or 'stretch', "
                             f'got {region_box_mode!r}')
        for side in (train_padding_side, test_padding_side):
            self._check_side(side)
        self.prompt_views = tuple(prompt_views)
        bad = set(self.prompt_views) - {'clip', 'grounding'}
        if bad or ('grounding' in self.prompt_views
                   and grounding_size is None):
            raise ValueError("prompt_views must be among 'clip' and "
                             "'grounding' (which needs grounding_size), got "
                             f'{self.prompt_views}')
        self.clip_size = clip_size
        self.clip_mode = clip_mode
        self.clip_interpolation = clip_interpolation
        self.grounding_size = grounding_size
        self.grounding_interpolation = grounding_interpolation
        self.round_resized = round_resized
        self.pad_token_id = pad_token_id
        self.label_pad_id = label_pad_id
        self.train_padding_side = train_padding_side
        self.test_padding_side = test_padding_side
        self.region_box_mode = region_box_mode
        self.register_buffer(
            'clip_mean', torch.tensor(clip_mean).view(3, 1, 1), False)
        self.register_buffer(
            'clip_std', torch.tensor(clip_std).view(3, 1, 1), False)
        self.register_buffer(
            'grounding_mean',
            torch.tensor(grounding_mean).view(3, 1, 1), False)
        self.register_buffer(
            'grounding_std', torch.tensor(grounding_std).view(3, 1, 1), False)

    @staticmethod
    def _check_side(side: str) -> None:
        if side not in ('left', 'right'):
            raise ValueError(
                f"padding side must be 'left' or 'right', got {side!r}")

    # ------------------------------------------------------------- views
    def _clip_geometry(self, height: int,
                       width: int) -> Tuple[Tuple[int, int], int, int]:
        """Resized (h, w) and crop offsets (top, left) of the CLIP view."""
        size = self.clip_size
        if self.clip_mode == 'resize':
            return (size, size), 0, 0
        new_h, new_w = shortest_side_resize_shape(height, width, size)
        return (new_h, new_w), (new_h - size) // 2, (new_w - size) // 2

    def clip_view(self, img: Tensor) -> Tensor:
        """[3, H, W] 0-255 -> [3, S, S] CLIP-normalised."""
        (new_h, new_w), top, left = self._clip_geometry(*img.shape[-2:])
        out = _resize(img, (new_h, new_w), self.clip_interpolation,
                      self.round_resized)
        out = out[:, top:top + self.clip_size, left:left + self.clip_size]
        return (out / 255. - self.clip_mean) / self.clip_std

    def grounding_view(self, img: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """[3, H, W] 0-255 -> ([3, G, G] SAM-normalised and padded, (h, w))."""
        size = self.grounding_size
        new_h, new_w = longest_side_resize_shape(*img.shape[-2:], size)
        out = _resize(img, (new_h, new_w), self.grounding_interpolation,
                      self.round_resized)
        out = (out - self.grounding_mean) / self.grounding_std
        out = F.pad(out, (0, size - new_w, 0, size - new_h), value=0.)
        return out, (new_h, new_w)

    def view_geometry(self, view: str, height: int, width: int,
                      stretch: bool = False
                      ) -> Tuple[Tuple[int, int], int, int, Tuple[int, int]]:
        """Where the original image lands in ``view`` ('clip'/'grounding').

        Returns:
            resized (h, w), crop offsets (top, left) and the visible
            (h, w) extent of the image inside the view.
        """
        if view == 'clip':
            size = self.clip_size
            if stretch:
                return (size, size), 0, 0, (size, size)
            (new_h, new_w), top, left = self._clip_geometry(height, width)
            return (new_h, new_w), top, left, (size, size)
        new_h, new_w = longest_side_resize_shape(height, width,
                                                 self.grounding_size)
        return (new_h, new_w), 0, 0, (new_h, new_w)

    def map_boxes(self, boxes: Tensor, height: int, width: int,
                  view: str = 'clip', stretch: bool = False) -> Tensor:
        """[R, 4] xyxy original pixels -> ``view`` pixels, clamped to the
        visible image (a box partly outside keeps its visible part)."""
        (new_h, new_w), top, left, (vis_h, vis_w) = self.view_geometry(
            view, height, width, stretch)
        scale = boxes.new_tensor([new_w / width, new_h / height] * 2)
        shift = boxes.new_tensor([left, top] * 2)
        out = boxes * scale - shift
        limit = boxes.new_tensor([vis_w, vis_h] * 2)
        return torch.minimum(out.clamp(min=0), limit)

    def boxes_to_clip_view(self, boxes: Tensor, height: int,
                           width: int) -> Tensor:
        """Map [R, 4] xyxy boxes from original pixels into the CLIP view
        (``region_box_mode`` decides crop geometry or stretch)."""
        return self.map_boxes(boxes, height, width, 'clip',
                              self.region_box_mode == 'stretch')

    def map_points(self, points: Tensor, height: int, width: int,
                   view: str) -> Tensor:
        """[K, 2] (x, y) original pixels -> ``view`` pixels (not clamped)."""
        (new_h, new_w), top, left, _ = self.view_geometry(view, height, width)
        return points * points.new_tensor([new_w / width, new_h / height]) - \
            points.new_tensor([left, top])

    def map_mask(self, mask: Tensor, view: str) -> Tensor:
        """[H, W] original-size mask -> the view's canvas (nearest resize,
        then the view's crop, or zero padding to G x G)."""
        height, width = mask.shape[-2:]
        (new_h, new_w), top, left, _ = self.view_geometry(view, height, width)
        out = F.interpolate(mask[None, None].float(), size=(new_h, new_w),
                            mode='nearest')[0, 0]
        if view == 'clip':
            size = self.clip_size
            return out[top:top + size, left:left + size]
        size = self.grounding_size
        return F.pad(out, (0, size - new_w, 0, size - new_h), value=0.)

    # ------------------------------------------------------------ tokens
    def pad_sequences(self, seqs: Sequence[Tensor], value: int,
                      side: str) -> Tensor:
        """Stack 1-D sequences into [B, L], padding on ``side``."""
        length = max((len(s) for s in seqs), default=0)
        out = seqs[0].new_full((len(seqs), length), value)
        for i, seq in enumerate(seqs):
            if side == 'right':
                out[i, :len(seq)] = seq
            elif len(seq):
                out[i, -len(seq):] = seq
        return out

    def _tokens(self, data_samples: Sequence, side: str) -> dict:
        ids, labels = [], []
        for i, sample in enumerate(data_samples):
            seq = sample.get('input_ids', None)
            if seq is None:
                raise KeyError(f'data sample {i} ({self._name(sample)}) has '
                               'no `input_ids`; run TokenizeConversation '
                               'and PackGroundingInputs first')
            ids.append(torch.as_tensor(seq, device=self.device).long())
            lab = sample.get('labels', None)
            labels.append(None if lab is None else torch.as_tensor(
                lab, device=self.device).long())
            if labels[-1] is not None and labels[-1].shape != ids[-1].shape:
                raise ValueError(
                    f'data sample {i} ({self._name(sample)}): labels '
                    f'{tuple(labels[-1].shape)} and input_ids '
                    f'{tuple(ids[-1].shape)} differ in length')
        have_labels = [lab is not None for lab in labels]
        if any(have_labels) and not all(have_labels):
            raise ValueError('some data samples have `labels` and some do '
                             'not; a batch must be all training or all '
                             f'prediction samples (has labels: {have_labels})')
        mask = self.pad_sequences([torch.ones_like(s) for s in ids], 0, side)
        return dict(
            input_ids=self.pad_sequences(ids, self.pad_token_id, side),
            attention_mask=mask,
            labels=self.pad_sequences(labels, self.label_pad_id, side)
            if all(have_labels) else None)

    @staticmethod
    def _name(sample) -> str:
        return str(sample.metainfo.get('img_path',
                                       sample.metainfo.get('img_id', '?')))

    # ----------------------------------------------------------- forward
    def _images(self, inputs, data_samples) -> List[Tensor]:
        images = list(inputs) if isinstance(inputs, (list, tuple)) or (
            isinstance(inputs, Tensor) and inputs.dim() == 4) else None
        if images is None:
            raise TypeError('inputs must be a list of CHW images or a '
                            f'[B, 3, H, W] tensor, got {type(inputs)}')
        for i, img in enumerate(images):
            if not isinstance(img, Tensor) or img.dim() != 3 or \
                    img.shape[0] != 3:
                where = self._name(data_samples[i]) if data_samples else i
                shape = tuple(img.shape) if isinstance(img, Tensor) else type(
                    img)
                raise ValueError(f'image {i} ({where}) must be a CHW RGB '
                                 f'tensor with 3 channels, got {shape}')
        return [img.to(self.device).float() for img in images]

    def forward(self,
                data: dict,
                training: bool = False,
                padding_side: Optional[str] = None) -> dict:
        """Build the model inputs of docs/data_contract.md §3.

        Args:
            data: ``dict(inputs=[CHW uint8 RGB, ...], data_samples=[...])``.
            training: selects the default padding side.
            padding_side: ``'left'``/``'right'`` to override the default.

        Returns:
            ``dict(inputs=dict(clip_pixels, grounding_pixels,
            grounding_sizes, input_ids, attention_mask, labels),
            data_samples=...)``; ``labels`` is None when the samples carry
            none, the grounding entries are None when ``grounding_size`` is
            None. Each sample gains ``region_bboxes_{view}`` /
            ``visual_prompts_{view}`` for every view of ``prompt_views``
            (when it has ``region_bboxes`` / ``visual_prompts``) and the
            ``batch_input_shape``/``pad_shape`` metainfo of the grounding
            view.
        """
        side = padding_side or (
            self.train_padding_side if training else self.test_padding_side)
        self._check_side(side)
        data = self.cast_data(data)
        data_samples = data.get('data_samples', None)
        images = self._images(data['inputs'], data_samples)
        if data_samples is not None and len(data_samples) != len(images):
            raise ValueError(f'{len(images)} images but {len(data_samples)} '
                             'data samples')

        with torch.no_grad():
            clip_pixels = torch.stack([self.clip_view(img) for img in images])
            grounding_pixels = grounding_sizes = sizes_host = None
            if self.grounding_size is not None:
                views = [self.grounding_view(img) for img in images]
                grounding_pixels = torch.stack([v[0] for v in views])
                sizes_host = [[int(x) for x in v[1]] for v in views]
                grounding_sizes = torch.tensor(sizes_host,
                                               dtype=torch.long,
                                               device=self.device)

        inputs = dict(
            clip_pixels=clip_pixels,
            grounding_pixels=grounding_pixels,
            grounding_sizes=grounding_sizes,
            # the same (h, w) on the host: heads read them without a sync
            grounding_sizes_host=sizes_host,
            input_ids=None,
            attention_mask=None,
            labels=None)
        if data_samples is not None:
            inputs.update(self._tokens(data_samples, side))
            self._update_samples(data_samples, images)
        return dict(inputs=inputs, data_samples=data_samples)

    def _update_samples(self, data_samples: Sequence,
                        images: Sequence[Tensor]) -> None:
        pad = (self.grounding_size, self.grounding_size) \
            if self.grounding_size is not None else (self.clip_size,
                                                     self.clip_size)
        for sample, img in zip(data_samples, images):
            sample.set_metainfo(dict(batch_input_shape=pad, pad_shape=pad))
            height, width = img.shape[-2:]
            boxes = sample.get('region_bboxes', None)
            if boxes is not None:
                boxes = getattr(boxes, 'tensor', boxes)
                boxes = torch.as_tensor(boxes, device=self.device).float()
                if boxes.dim() != 2 or boxes.shape[-1] != 4:
                    raise ValueError(
                        f'{self._name(sample)}: region_bboxes must be '
                        f'[R, 4] xyxy, got {tuple(boxes.shape)}')
                for view in self.prompt_views:
                    stretch = view == 'clip' and \
                        self.region_box_mode == 'stretch'
                    mapped = self.map_boxes(boxes, height, width, view,
                                            stretch)
                    self._check_visible(sample, 'region_bboxes', view,
                                        boxes, mapped)
                    sample.set_field(mapped, f'region_bboxes_{view}')
            prompts = sample.get('visual_prompts', None)
            if prompts is not None:
                for view in self.prompt_views:
                    sample.set_field(
                        [self._map_prompt(sample, k, p, height, width, view)
                         for k, p in enumerate(prompts)],
                        f'visual_prompts_{view}')

    def _map_prompt(self, sample, k: int, prompt: dict, height: int,
                    width: int, view: str) -> dict:
        """One ``visual_prompts`` entry in ``view`` pixels (``points``,
        ``box`` and ``mask`` mapped; other keys copied)."""
        out = dict(prompt)
        field = f'visual_prompts[{k}]'
        if prompt.get('box') is not None:
            box = torch.as_tensor(prompt['box'], device=self.device).float()
            mapped = self.map_boxes(box.reshape(1, 4), height, width, view)
            self._check_visible(sample, f'{field}.box', view,
                                box.reshape(1, 4), mapped)
            out['box'] = mapped[0]
        if prompt.get('points') is not None:
            pts = torch.as_tensor(prompt['points'],
                                  device=self.device).float().reshape(-1, 2)
            mapped = self.map_points(pts, height, width, view)
            _, _, _, (vis_h, vis_w) = self.view_geometry(view, height, width)
            inside = (mapped[:, 0] >= 0) & (mapped[:, 0] <= vis_w) & \
                (mapped[:, 1] >= 0) & (mapped[:, 1] <= vis_h)
            if len(pts) and not bool(inside.any()):
                raise GroundingDataError(
                    f'{field}.points {pts.tolist()} all fall outside the '
                    f'{view} view of a {height}x{width} image',
                    source=sample.metainfo.get('img_path'),
                    img_id=sample.metainfo.get('img_id'),
                    field=f'{field}.points')
            out['points'] = mapped
        if prompt.get('mask') is not None:
            mask = torch.as_tensor(prompt['mask'], device=self.device)
            out['mask'] = self.map_mask(mask, view)
        return out

    def _check_visible(self, sample, field: str, view: str, boxes: Tensor,
                       mapped: Tensor) -> None:
        """Raise for a box with no area left inside the view."""
        empty = (mapped[:, 2] <= mapped[:, 0]) | (mapped[:, 3] <= mapped[:, 1])
        if bool(empty.any()):
            k = int(empty.nonzero()[0, 0])
            raise GroundingDataError(
                f'{field}[{k}] = {boxes[k].tolist()} (original pixels) has '
                f'no area inside the {view} view (mapped: '
                f'{mapped[k].tolist()}); the encoder would embed pixels it '
                "never sees. Use clip_mode='resize' or "
                "region_box_mode='stretch' for regions outside the crop",
                source=sample.metainfo.get('img_path'),
                img_id=sample.metainfo.get('img_id'),
                field=field)
