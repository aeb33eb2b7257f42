"""LLaVA-Grounding's visual-prompt encoder (``interactive_model``, ``<obj>``).

Architecture (``llava_g_design.md`` §2, Semantic-SAM interactive decoder):

1. mmdet ``SwinTransformer`` (its own Swin-T at full size) -> res2..res5;
2. :class:`OpenSeeDPixelDecoder` (the same ``encoder_deform`` as the
   grounding model) -> 1/4 mask features + 4 levels (1/8 .. 1/64);
3. an interactive DINO decoder (:class:`OpenSeeDTransformerDecoder`, 9
   layers) with NO learned queries: every prompt becomes
   ``num_mask_tokens`` (3) queries whose content is
   ``label_enc(0) + pb_embedding(type) + mask_tokens[k]`` (type: click 0,
   box 1) and whose reference is the prompt box (a click is a tiny box).
   In training the prompt boxes are jittered and the self-attention is
   block-diagonal (a prompt's tokens see only each other); at inference
   there is no mask (only padding prompts of a batch are hidden);
4. per decoder layer: ``decoder.norm`` (applied a second time, as in the
   release) -> mask = ``mask_embed(q) . mask_features``, IoU score =
   MLP(d, d, 1, 3), box = shared box MLP on the once-normed states +
   the layer's reference;
5. ``obj_features`` = twice-normed final states of token 0 of each prompt
   (the token index is fixed to 0 in training and inference) ->
   ``obj_projector`` Linear(d, C_lm) -> the embedding of each ``<obj>``.

Prompt dicts (``visual_prompts_grounding`` of ``GroundingDataPreprocessor``,
in pixels of the G x G view): ``click`` (``points`` [1, 2]), ``box``
(``box`` [4] xyxy), ``scribble`` (``points`` [K, 2] and the stroke
``mask``) and ``mark``. The official model encodes only clicks and boxes; a
scribble is reduced as the official demo does (``scribble_mode='box'``, the
default: the stroke's bounding box; ``'click'``: its centroid) or, as an
extension, ``'points'``: each sampled point is a click and the K click
embeddings are averaged. Marks (Set-of-Mark) are painted on the image and
read by the LLM, never encoded: a ``mark`` prompt raises.

Losses (no matching: prompt i is supervised by the object it was drawn
from, ``instance_id`` -> ``gt_objects``), on token 0 of every prompt, for
the final layer and the ``num_layers - 1`` earlier ones: point-sampled mask
BCE (5) + dice (5), IoU-score MSE (1) against the (detached) soft dice
coefficient of the prediction (= 1 - its dice loss), L1 (5) + GIoU (2) on
normalised boxes; each divided by the prompts of the batch and multiplied
by ``loss_weight_multiplier`` (0.2 in stage 3). Everything runs in fp32
with autocast off (mmcv's deformable attention has no bf16 kernel).
"""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mmdet.models.backbones  # noqa: F401 (registers SwinTransformer)
import mmdet.models.losses  # noqa: F401 (registers mmdet losses)
import torch
from mmcv.ops import point_sample
from mmdet.models.layers.transformer import MLP, inverse_sigmoid
from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmdet.utils import reduce_mean
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn import functional as F

from mmgrounding.registry import MODELS
from mmgrounding.structures import GroundingDataError
from ..data_preprocessors.grounding_data_preprocessor import \
    longest_side_resize_shape
from ..grounding_heads.openseed_grounding_head import (OPENSEED_DECODER,
                                                       OPENSEED_PIXEL_DECODER,
                                                       SWIN_T,
                                                       tiny_openseed_parts)
from ..layers import (OpenSeeDPixelDecoder, OpenSeeDTransformerDecoder,
                      init_openseed_decoder)

#: Prompt-type ids of ``pb_embedding`` (official: click 0, box 1).
PROMPT_TYPE_IDS = {'click': 0, 'box': 1}
SCRIBBLE_MODES = ('box', 'click', 'points')
ENCODED_TYPES = ('click', 'box', 'scribble')


def _source_of(sample: Any) -> Optional[str]:
    meta = sample.metainfo
    for key in ('ann_file', 'source', 'img_path'):
        value = meta.get(key)
        if value:
            return osp.basename(str(value)) if key != 'source' else value
    return None


def tiny_semantic_sam_prompt_encoder_cfg(lm_dim: int,
                                         embed_dims: int = 32,
                                         swin_dims: int = 16,
                                         num_points: int = 256,
                                         decoder_layers: int = 2,
                                         encoder_layers: int = 1) -> dict:
    """A CPU-sized encoder (design note §8) for tests and tiny recipes:
    :func:`tiny_openseed_parts` with Swin heads 1-1-2-4 and ``num_points``
    points for the mask losses."""
    return dict(
        type='SemanticSAMPromptEncoder',
        lm_dim=lm_dim,
        **tiny_openseed_parts(embed_dims, swin_dims, (1, 1, 2, 4),
                              decoder_layers, encoder_layers),
        num_points=num_points)


@MODELS.register_module()
class SemanticSAMPromptEncoder(BaseModule):
    """Clicks / boxes / scribbles of the grounding view -> ``<obj>`` embeds.

    Called by :class:`BaseGroundedLMM` through a ``PromptSlot`` as
    ``encoder(view, prompts)`` with ``view`` = ``grounding_pixels``
    [B, 3, G, G] and ``prompts`` = per sample the list of prompt dicts of
    ``visual_prompts_grounding``; returns one [R_i, lm_dim] tensor per
    sample. :meth:`loss` / :meth:`loss_and_embed` add the stage-3 losses.

    Args:
        lm_dim: width C_lm of the LLM embeddings (4096 for Vicuna-7B).
        backbone / pixel_decoder / decoder: as for the OpenSeeD head
            (official Swin-T, ``encoder_deform``, 9 DINO layers eps 1e-5).
        embed_dims: decoder width d (256).
        num_mask_tokens: queries per prompt (official 3).
        obj_token: which of them gives ``obj_features`` and is supervised
            (official 0).
        scribble_mode: ``'box'`` (default, official demo), ``'click'``
            (centroid, official demo) or ``'points'`` (each sampled point a
            click, embeddings averaged; not official).
        train_click_half_size: half side, in view pixels, of a click's box
            in training (official +-3 px).
        test_click_size: side of a click's box at inference, normalised to
            the view (official demo 0.006).
        box_noise_scale: training jitter of the prompt boxes (official 0.4):
            every corner moves by U(-1, 1) x half the box side x scale.
        click_noise_factor: extra factor of the jitter for clicks (0.01).
        num_points / oversample_ratio / importance_sample_ratio: point
            sampling of the mask losses (12544, 3, 0.75).
        loss_mask / loss_dice / loss_iou_score / loss_bbox / loss_giou:
            mmdet loss configs (weights 5, 5, 1, 5, 2).
        loss_weight_multiplier: multiplies every loss (stage 3: 0.2).
        trainable: the whole encoder (incl. ``obj_projector``) trains
            (stage 3) or is frozen (``requires_grad`` False).
    """

    def __init__(self,
                 lm_dim: int = 4096,
                 backbone: dict = SWIN_T,
                 pixel_decoder: dict = OPENSEED_PIXEL_DECODER,
                 decoder: dict = OPENSEED_DECODER,
                 embed_dims: int = 256,
                 num_mask_tokens: int = 3,
                 obj_token: int = 0,
                 scribble_mode: str = 'box',
                 train_click_half_size: float = 3.0,
                 test_click_size: float = 0.006,
                 box_noise_scale: float = 0.4,
                 click_noise_factor: float = 0.01,
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 loss_mask: dict = dict(
                     type='mmdet.CrossEntropyLoss',
                     use_sigmoid=True,
                     reduction='mean',
                     loss_weight=5.0),
                 loss_dice: dict = dict(
                     type='mmdet.DiceLoss',
                     use_sigmoid=True,
                     activate=True,
                     reduction='mean',
                     naive_dice=True,
                     eps=1.0,
                     loss_weight=5.0),
                 loss_iou_score: dict = dict(
                     type='mmdet.MSELoss', loss_weight=1.0),
                 loss_bbox: dict = dict(type='mmdet.L1Loss', loss_weight=5.0),
                 loss_giou: dict = dict(type='mmdet.GIoULoss',
                                        loss_weight=2.0),
                 loss_weight_multiplier: float = 0.2,
                 trainable: bool = True,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if scribble_mode not in SCRIBBLE_MODES:
            raise ValueError(f'scribble_mode must be one of {SCRIBBLE_MODES}'
                             f', got {scribble_mode!r}')
        if not 0 <= obj_token < num_mask_tokens:
            raise ValueError(f'obj_token {obj_token} not in [0, '
                             f'{num_mask_tokens})')
        self.lm_dim = lm_dim
        self.embed_dims = embed_dims
        self.num_mask_tokens = num_mask_tokens
        self.obj_token = obj_token
        self.scribble_mode = scribble_mode
        self.train_click_half_size = train_click_half_size
        self.test_click_size = test_click_size
        self.box_noise_scale = box_noise_scale
        self.click_noise_factor = click_noise_factor
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.loss_weight_multiplier = loss_weight_multiplier

        self.backbone = MODELS.build(backbone)
        pixel_decoder = dict(pixel_decoder)
        pixel_decoder.setdefault('type', 'OpenSeeDPixelDecoder')
        self.pixel_decoder = MODELS.build(pixel_decoder)
        if not isinstance(self.pixel_decoder, OpenSeeDPixelDecoder):
            raise TypeError('pixel_decoder must be an OpenSeeDPixelDecoder')
        decoder = dict(decoder)
        decoder.pop('type', None)
        self.decoder = OpenSeeDTransformerDecoder(**decoder)
        if self.decoder.embed_dims != embed_dims:
            raise ValueError(f'decoder width {self.decoder.embed_dims} != '
                             f'embed_dims {embed_dims}')
        # Query builder (official names): content of token k of a prompt of
        # type t = label_enc[0] + pb_embedding[t] + mask_tokens[k].
        self.label_enc = nn.Embedding(2, embed_dims)
        self.pb_embedding = nn.Embedding(len(PROMPT_TYPE_IDS), embed_dims)
        self.mask_tokens = nn.Embedding(num_mask_tokens, embed_dims)
        # Heads: one box MLP shared by every layer (official _bbox_embed).
        self.reg_branch = MLP(embed_dims, embed_dims, 4, 3)
        mask_dims = self.pixel_decoder.mask_feature.out_channels
        self.mask_embed = MLP(embed_dims, embed_dims, mask_dims, 3)
        self.iou_prediction_head = MLP(embed_dims, embed_dims, 1, 3)
        self.obj_projector = nn.Linear(embed_dims, lm_dim)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.loss_iou_score = MODELS.build(loss_iou_score)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_giou = MODELS.build(loss_giou)
        self._init_decoder_side()
        self.trainable = trainable
        if not trainable:
            self.requires_grad_(False)

    # ------------------------------------------------------------------
    # initialisation
    def _init_decoder_side(self) -> None:
        init_openseed_decoder(self.decoder, self.reg_branch)

    def init_weights(self) -> None:
        super().init_weights()
        self._init_decoder_side()

    # ------------------------------------------------------------------
    # image side
    def extract_feat(self, pixels: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """Backbone + pixel decoder of the padded view [B, 3, G, G].

        Returns:
            ``(mask_features [B, m, G/4, G/4], [4 maps [B, d, G/s, G/s]]``
            for s = 8, 16, 32, 64), fp32.
        """
        if pixels.dim() != 4 or pixels.shape[1] != 3:
            raise ValueError(f'{type(self).__name__}: the view must be '
                             f'[B, 3, G, G], got {tuple(pixels.shape)}')
        with torch.autocast(device_type=pixels.device.type, enabled=False):
            feats = self.backbone(pixels.float())
            return self.pixel_decoder(list(feats))

    # ------------------------------------------------------------------
    # prompts -> reference boxes
    @staticmethod
    def _where(index: int, data_samples: Optional[Sequence]) -> dict:
        sample = None if data_samples is None else data_samples[index]
        if sample is None:
            return dict(img_id=f'batch sample {index}')
        return dict(source=_source_of(sample),
                    img_id=sample.metainfo.get('img_id', f'batch sample '
                                               f'{index}'))

    def _bad(self, index, data_samples, field, message, **value):
        """GroundingDataError naming the sample (``value=`` optional)."""
        where = self._where(index, data_samples)
        return GroundingDataError(
            f'batch sample {index}: {message}', field=field, **value,
            **where)

    def _click_box(self, xy: Tensor, canvas: Tuple[int, int]) -> Tensor:
        """A click (x, y) in view pixels -> normalised cxcywh tiny box."""
        g_h, g_w = canvas
        centre = xy / xy.new_tensor([g_w, g_h])
        if self.training:
            size = xy.new_tensor([2 * self.train_click_half_size / g_w,
                                  2 * self.train_click_half_size / g_h])
        else:
            size = xy.new_tensor([self.test_click_size] * 2)
        return torch.cat([centre, size])

    def prompt_boxes(self,
                     prompts: Sequence[Sequence[dict]],
                     canvas: Tuple[int, int],
                     device: torch.device,
                     data_samples: Optional[Sequence] = None
                     ) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """Reference boxes of every encoded unit, per sample.

        A unit is one box or click fed to the decoder; a prompt is one
        unit, except a scribble in ``'points'`` mode (K units, averaged).

        Returns:
            per sample ``(boxes [U, 4] normalised cxcywh (no noise),
            types [U] long (0 click, 1 box), owner [U] long: the prompt of
            each unit)``.
        """
        g_h, g_w = canvas
        out = []
        for i, sample_prompts in enumerate(prompts):
            if isinstance(sample_prompts, Tensor):
                raise self._bad(
                    i, data_samples, 'visual_prompts_grounding',
                    'expected a list of visual-prompt dicts, got a tensor '
                    f'{tuple(sample_prompts.shape)}')
            boxes, types, owner = [], [], []
            for k, prompt in enumerate(sample_prompts):
                field = f'visual_prompts_grounding[{k}]'
                kind = prompt.get('type') if isinstance(prompt,
                                                        dict) else None
                if kind == 'mark':
                    raise self._bad(
                        i, data_samples, f'{field}.type',
                        "a 'mark' (Set-of-Mark) prompt is not encoded by "
                        'the Semantic-SAM prompt encoder (the official '
                        'model reads marks painted on the image through '
                        'the LLM); paint it into the image instead, or '
                        'sample click/box/scribble prompts (the PaintMarks '
                    'transform paints marks and cites them in the text)')
                if kind not in ENCODED_TYPES:
                    raise self._bad(
                        i, data_samples, f'{field}.type',
                        f'unknown visual-prompt type; expected one of '
                        f'{ENCODED_TYPES}', value=kind)
                units = self._units(i, k, kind, prompt, canvas, device,
                                    data_samples)
                for box, typ in units:
                    xyxy = bbox_cxcywh_to_xyxy(box)
                    x1, y1, x2, y2 = xyxy.tolist()
                    cx, cy = box[:2].tolist()
                    tol = 1e-3
                    if typ == PROMPT_TYPE_IDS['click']:
                        outside = not (-tol <= cx <= 1 + tol
                                       and -tol <= cy <= 1 + tol)
                    else:
                        outside = x1 >= 1 or y1 >= 1 or x2 <= 0 or y2 <= 0
                    if outside:
                        value = prompt.get('box')
                        if value is None:
                            value = prompt.get('points')
                        raise self._bad(
                            i, data_samples, field,
                            f'{kind} prompt lies outside the {g_h}x{g_w} '
                            'view', value=torch.as_tensor(value).tolist())
                    boxes.append(bbox_xyxy_to_cxcywh(xyxy.clamp(0, 1)))
                    types.append(typ)
                    owner.append(k)
            out.append((torch.stack(boxes) if boxes else torch.zeros(
                (0, 4), device=device),
                        torch.tensor(types, dtype=torch.long, device=device),
                        torch.tensor(owner, dtype=torch.long, device=device)))
        return out

    def _units(self, i, k, kind, prompt, canvas, device,
               data_samples) -> List[Tuple[Tensor, int]]:
        field = f'visual_prompts_grounding[{k}]'
        g_h, g_w = canvas
        if kind == 'box':
            box = prompt.get('box')
            if box is None:
                raise self._bad(i, data_samples, f'{field}.box',
                                'box prompt without a `box`')
            box = torch.as_tensor(box, dtype=torch.float32,
                                  device=device).reshape(-1)
            if box.numel() != 4 or not bool(torch.isfinite(box).all()) or \
                    box[2] <= box[0] or box[3] <= box[1]:
                raise self._bad(i, data_samples, f'{field}.box',
                                'box must be 4 finite xyxy values with '
                                'x2 > x1 and y2 > y1', value=box.tolist())
            norm = box / box.new_tensor([g_w, g_h, g_w, g_h])
            return [(bbox_xyxy_to_cxcywh(norm), PROMPT_TYPE_IDS['box'])]
        points = prompt.get('points')
        if points is None:
            raise self._bad(i, data_samples, f'{field}.points',
                            f'{kind} prompt without `points`')
        points = torch.as_tensor(points, dtype=torch.float32,
                                 device=device).reshape(-1, 2)
        if len(points) == 0 or not bool(torch.isfinite(points).all()):
            raise self._bad(i, data_samples, f'{field}.points',
                            'points must be [K>=1, 2] finite (x, y)',
                            value=points.tolist())
        if kind == 'click':
            if len(points) != 1:
                raise self._bad(i, data_samples, f'{field}.points',
                                f'a click has one point, got {len(points)}')
            return [(self._click_box(points[0], canvas),
                     PROMPT_TYPE_IDS['click'])]
        # scribble
        if self.scribble_mode == 'points':
            return [(self._click_box(p, canvas), PROMPT_TYPE_IDS['click'])
                    for p in points]
        stroke = prompt.get('mask')
        if stroke is not None:
            stroke = torch.as_tensor(stroke, device=device)
            ys, xs = torch.nonzero(stroke > 0, as_tuple=True)
            if len(xs):
                # stroke pixels: their extent / centroid in pixel units
                pix = torch.stack([xs, ys], 1).float() + 0.5
            else:
                pix = points
        else:
            pix = points
        if self.scribble_mode == 'click':
            return [(self._click_box(pix.mean(0), canvas),
                     PROMPT_TYPE_IDS['click'])]
        lo, hi = pix.min(0).values, pix.max(0).values
        if stroke is not None and len(pix) and pix is not points:
            lo, hi = lo - 0.5, hi + 0.5  # pixel extents, not centres
        hi = torch.maximum(hi, lo + 1.0)  # a straight stroke still has area
        norm = torch.cat([lo, hi]) / lo.new_tensor([g_w, g_h, g_w, g_h])
        return [(bbox_xyxy_to_cxcywh(norm), PROMPT_TYPE_IDS['box'])]

    def jitter(self, boxes: Tensor, types: Tensor) -> Tensor:
        """Training noise of normalised cxcywh boxes (official DN-style:
        corners += U(-1, 1) x half side x scale; clicks x0.01)."""
        if self.box_noise_scale <= 0 or len(boxes) == 0:
            return boxes
        xyxy = bbox_cxcywh_to_xyxy(boxes)
        half = boxes[:, 2:].repeat(1, 2) / 2
        scale = torch.where(types == PROMPT_TYPE_IDS['click'],
                            self.box_noise_scale * self.click_noise_factor,
                            self.box_noise_scale)[:, None]
        noise = torch.rand_like(xyxy) * 2 - 1
        xyxy = (xyxy + noise * half * scale).clamp(0, 1)
        return bbox_xyxy_to_cxcywh(xyxy)

    # ------------------------------------------------------------------
    # decoder
    def self_attn_mask(self, valid: Tensor, block_diagonal: bool) -> Tensor:
        """Bool [B * heads, Q, Q] mask (True = may NOT attend).

        Args:
            valid: [B, U] real (not padding) units of each sample.
            block_diagonal: tokens of a unit see only each other (training);
                otherwise every real token sees every real token.
        """
        t = self.num_mask_tokens
        batch, units = valid.shape
        unit_of = torch.arange(units * t, device=valid.device) // t
        key_ok = valid.repeat_interleave(t, 1)[:, None, :]  # [B, 1, Q]
        allowed = key_ok.expand(batch, units * t, units * t)
        if block_diagonal:
            allowed = allowed & (unit_of[:, None] == unit_of[None, :])
        eye = torch.eye(units * t, dtype=torch.bool, device=valid.device)
        allowed = allowed | eye  # padding rows attend to themselves
        heads = self.decoder.layers[0].self_attn.num_heads
        return (~allowed).repeat_interleave(heads, 0)

    def decode(self, feats: Tuple[Tensor, Sequence[Tensor]],
               boxes: Sequence[Tensor],
               types: Sequence[Tensor]) -> Dict[str, Tensor]:
        """Run the interactive decoder on the units of every sample.

        Args:
            feats: :meth:`extract_feat` output.
            boxes: per sample [U_i, 4] reference boxes, normalised cxcywh
                (already jittered in training).
            types: per sample [U_i] type ids.

        Returns:
            dict of the ``obj_token`` of every unit, padded to U = max U_i:
            ``masks [L, B, U, h, w]``, ``ious [L, B, U]``,
            ``boxes [L, B, U, 4]`` (normalised cxcywh; index L-1 = final
            layer), ``obj_features [B, U, d]`` and ``valid [B, U]``.
        """
        mask_features, mlvl = feats
        batch = mask_features.shape[0]
        t = self.num_mask_tokens
        units = max([len(b) for b in boxes] + [1])
        device = mask_features.device
        valid = torch.zeros((batch, units), dtype=torch.bool, device=device)
        ref = mask_features.new_full((batch, units, 4), 0.5)
        typ = torch.zeros((batch, units), dtype=torch.long, device=device)
        for b, (bx, ty) in enumerate(zip(boxes, types)):
            valid[b, :len(bx)] = True
            ref[b, :len(bx)] = bx
            typ[b, :len(bx)] = ty
        # [B, U, t, d] content, [B, U*t, 4] references
        content = (self.label_enc.weight[0] +
                   self.pb_embedding(typ)[:, :, None] +
                   self.mask_tokens.weight[None, None])
        query = content.reshape(batch, units * t, self.embed_dims)
        reference = ref.repeat_interleave(t, 1)
        # decoder memory: low resolution first (as the grounding model)
        levels = list(mlvl)[::-1]
        memory = torch.cat([lvl.flatten(2).transpose(1, 2) for lvl in levels],
                           1)
        spatial_shapes = torch.as_tensor(
            [tuple(lvl.shape[-2:]) for lvl in levels], dtype=torch.long,
            device=device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(
            (1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        hidden, references = self.decoder(
            query=query,
            value=memory,
            key_padding_mask=None,
            self_attn_mask=self.self_attn_mask(valid, self.training),
            reference_points=reference,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            valid_ratios=memory.new_ones((batch, len(levels), 2)),
            reg_branches=[self.reg_branch] * self.decoder.num_layers)
        pick = torch.arange(units, device=device) * t + self.obj_token
        hidden = hidden[:, :, pick]  # [L, B, U, d], normed once
        refs = references[:-1, :, pick]  # input reference of each layer
        eps = self.decoder.inverse_sigmoid_eps
        out_boxes = (self.reg_branch(hidden) +
                     inverse_sigmoid(refs, eps=eps)).sigmoid()
        normed = self.decoder.norm(hidden)  # twice normed (official)
        masks = torch.einsum('lbuc,bchw->lbuhw', self.mask_embed(normed),
                             mask_features)
        ious = self.iou_prediction_head(normed).squeeze(-1)
        return dict(masks=masks, ious=ious, boxes=out_boxes,
                    obj_features=normed[-1], valid=valid)

    # ------------------------------------------------------------------
    # public API
    def _run(self, view: Tensor, prompts: Sequence[Sequence[dict]],
             data_samples: Optional[Sequence]
             ) -> Tuple[Dict[str, Tensor], List[Tuple[Tensor, Tensor,
                                                      Tensor]]]:
        if not isinstance(view, Tensor) or view.dim() != 4:
            raise ValueError(f'{type(self).__name__}: the view must be the '
                             '[B, 3, G, G] grounding pixels, got '
                             f'{getattr(view, "shape", type(view))}')
        if len(prompts) != view.shape[0]:
            raise ValueError(f'{type(self).__name__}: {len(prompts)} prompt '
                             f'lists for {view.shape[0]} images')
        units = self.prompt_boxes(prompts, tuple(view.shape[-2:]),
                                  view.device, data_samples)
        with torch.autocast(device_type=view.device.type, enabled=False):
            feats = self.extract_feat(view)
            boxes = [self.jitter(b, t) if self.training else b
                     for b, t, _ in units]
            out = self.decode(feats, boxes, [t for _, t, _ in units])
        return out, units

    def _embed(self, out: Dict[str, Tensor],
               units: Sequence[Tuple[Tensor, Tensor, Tensor]],
               prompts: Sequence[Sequence[dict]]) -> List[Tensor]:
        feats = out['obj_features']
        embeds = []
        for b, (_, _, owner) in enumerate(units):
            n = len(prompts[b])
            unit_feats = feats[b, :len(owner)]
            # average the units of each prompt (one unit except 'points')
            summed = unit_feats.new_zeros((n, unit_feats.shape[-1]))
            summed.index_add_(0, owner, unit_feats)
            count = torch.bincount(owner, minlength=n).clamp(min=1)
            obj = summed / count[:, None].to(summed.dtype)
            param = self.obj_projector.weight
            embeds.append(self.obj_projector(obj.to(param.dtype)))
        return embeds

    def forward(self, view: Tensor, prompts: Sequence[Sequence[dict]],
                data_samples: Optional[Sequence] = None) -> List[Tensor]:
        """``<obj>`` embeddings: per sample [R_i, lm_dim], prompt order.

        Args:
            view: grounding pixels [B, 3, G, G].
            prompts: per sample the list of prompt dicts in view pixels.
            data_samples: optional, only to name samples in errors.
        """
        out, units = self._run(view, prompts, data_samples)
        with torch.autocast(device_type=view.device.type, enabled=False):
            return self._embed(out, units, prompts)

    @torch.no_grad()
    def predict(self, view: Tensor, prompts: Sequence[Sequence[dict]],
                data_samples: Optional[Sequence] = None
                ) -> List[Dict[str, Tensor]]:
        """Final-layer masks of the prompts (what the demo draws).

        Returns:
            per sample ``dict(masks [U, G/4, G/4] logits, ious [U],
            boxes [U, 4] normalised cxcywh, owner [U])`` per encoded unit.
        """
        out, units = self._run(view, prompts, data_samples)
        res = []
        for b, (_, _, owner) in enumerate(units):
            n = len(owner)
            res.append(dict(masks=out['masks'][-1, b, :n],
                            ious=out['ious'][-1, b, :n],
                            boxes=out['boxes'][-1, b, :n], owner=owner))
        return res

    def loss(self, view: Tensor, prompts: Sequence[Sequence[dict]],
             data_samples: Sequence) -> Dict[str, Tensor]:
        """Stage-3 losses of the prompts (see the module doc)."""
        return self.loss_and_embed(view, prompts, data_samples)[1]

    def loss_and_embed(self, view: Tensor, prompts: Sequence[Sequence[dict]],
                       data_samples: Sequence
                       ) -> Tuple[List[Tensor], Dict[str, Tensor]]:
        """One training forward -> (``<obj>`` embeddings, losses).

        The embeddings are those of :meth:`forward` for the same (jittered,
        block-masked) pass, so a model can scatter them into the LLM input
        and add the losses without running the encoder twice.

        Returns:
            ``([R_i, lm_dim] per sample, dict)`` with ``vp.loss_{mask,dice,
            iou_score,bbox,giou}`` (final layer) and the same keys as
            ``vp.d{l}.loss_*`` for the earlier layers l = 0 .. L-2.
        """
        if data_samples is None or len(data_samples) != len(prompts):
            raise ValueError(f'{type(self).__name__}.loss needs one data '
                             'sample per image (the targets)')
        out, units = self._run(view, prompts, data_samples)
        with torch.autocast(device_type=view.device.type, enabled=False):
            embeds = self._embed(out, units, prompts)
            targets = self.targets(prompts, units, data_samples,
                                   tuple(view.shape[-2:]))
            losses = self.loss_by_feat(out, targets)
        return embeds, losses

    # ------------------------------------------------------------------
    # targets and losses
    def targets(self, prompts: Sequence[Sequence[dict]],
                units: Sequence[Tuple[Tensor, Tensor, Tensor]],
                data_samples: Sequence,
                canvas: Tuple[int, int]) -> Dict[str, Tensor]:
        """The object each unit points at, in the view's canvas frame.

        ``instance_id`` of the prompt (``SampleVisualPrompts``) indexes
        ``gt_objects``; masks are resized to the image inside the pad and
        zero-padded to the canvas, boxes normalised cxcywh of the canvas.

        Returns:
            ``dict(masks [N, G, G], boxes [N, 4], mask_valid [N] bool)``
            for the N real units in batch order.
        """
        g_h, g_w = canvas
        device = units[0][0].device if units else torch.device('cpu')
        masks, boxes, mvalid = [], [], []
        for b, (_, _, owner) in enumerate(units):
            sample = data_samples[b]
            objects = sample.get('gt_objects', None)
            num = 0 if objects is None else len(objects)
            if len(owner) == 0:
                continue
            ori_h, ori_w = sample.metainfo['ori_shape'][:2]
            h, w = longest_side_resize_shape(ori_h, ori_w, max(g_h, g_w))
            obj_masks = obj_boxes = valid = None
            ids = []
            for k in owner.tolist():
                inst = prompts[b][k].get('instance_id')
                if inst is None or not 0 <= int(inst) < num:
                    raise self._bad(
                        b, data_samples,
                        f'visual_prompts_grounding[{k}].instance_id',
                        f'the prompt loss needs the prompted object among '
                        f'the {num} gt_objects', value=inst)
                ids.append(int(inst))
            ids = torch.tensor(ids, dtype=torch.long)
            obj_masks = objects.masks
            obj_masks = obj_masks.to_tensor(torch.float32, device) if \
                hasattr(obj_masks, 'to_tensor') else torch.as_tensor(
                    obj_masks, dtype=torch.float32, device=device)
            if tuple(obj_masks.shape[-2:]) != (ori_h, ori_w):
                raise self._bad(
                    b, data_samples, 'gt_objects',
                    f'masks {tuple(obj_masks.shape[-2:])} differ from '
                    f'ori_shape {(ori_h, ori_w)}')
            sel = obj_masks[ids.to(obj_masks.device)]
            sel = F.interpolate(sel[:, None], size=(h, w), mode='bilinear',
                                align_corners=False)
            masks.append(F.pad((sel[:, 0] >= 0.5).float(),
                               (0, g_w - w, 0, g_h - h)))
            obj_boxes = getattr(objects.bboxes, 'tensor', objects.bboxes)
            obj_boxes = torch.as_tensor(obj_boxes, dtype=torch.float32,
                                        device=device)[ids.to(device)]
            scale = obj_boxes.new_tensor([w / ori_w / g_w, h / ori_h / g_h] *
                                         2)
            boxes.append(bbox_xyxy_to_cxcywh(obj_boxes * scale))
            valid = objects.get('mask_valid', None)
            valid = torch.ones(num, dtype=torch.bool) if valid is None else \
                torch.as_tensor(valid, dtype=torch.bool).cpu()
            mvalid.append(valid[ids].to(device))
        if not masks:
            return dict(masks=torch.zeros((0, g_h, g_w), device=device),
                        boxes=torch.zeros((0, 4), device=device),
                        mask_valid=torch.zeros((0, ), dtype=torch.bool,
                                               device=device))
        return dict(masks=torch.cat(masks), boxes=torch.cat(boxes),
                    mask_valid=torch.cat(mvalid))

    def sample_loss_points(self, mask_logits: Tensor) -> Tensor:
        """Importance-sampled points of [N, 1, h, w] logits: [N, P, 2]
        (a separate method so that tests can fix the points)."""
        return get_uncertain_point_coords_with_randomness(
            mask_logits, None, self.num_points, self.oversample_ratio,
            self.importance_sample_ratio)

    def loss_by_feat(self, out: Dict[str, Tensor],
                     targets: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Losses of every layer from :meth:`decode` outputs and targets."""
        valid = out['valid']
        num_layers = out['masks'].shape[0]
        num = torch.tensor(float(len(targets['boxes'])),
                           device=valid.device)
        num_masks = reduce_mean(num).clamp(min=1.0)
        zero = sum(v.sum() for k, v in out.items()
                   if k in ('masks', 'ious', 'boxes', 'obj_features')) * 0.
        zero = zero + sum(p.sum() * 0. for p in self.parameters()
                          if p.requires_grad)
        losses = {}
        for lid in range(num_layers):
            prefix = 'vp.' if lid == num_layers - 1 else f'vp.d{lid}.'
            masks = out['masks'][lid][valid]
            if len(masks) == 0:
                part = dict.fromkeys(
                    ('loss_mask', 'loss_dice', 'loss_iou_score', 'loss_bbox',
                     'loss_giou'), zero)
            else:
                part = self.loss_single(masks, out['ious'][lid][valid],
                                        out['boxes'][lid][valid], targets,
                                        num_masks)
            for key, value in part.items():
                losses[prefix + key] = value * self.loss_weight_multiplier
        first = next(iter(losses))
        losses[first] = losses[first] + zero
        return losses

    def loss_single(self, masks: Tensor, ious: Tensor, boxes: Tensor,
                    targets: Dict[str, Tensor],
                    num_masks: Tensor) -> Dict[str, Tensor]:
        """Unweighted-by-multiplier losses of one layer.

        Args:
            masks: [N, h, w] logits; ious: [N]; boxes: [N, 4] cxcywh.
        """
        gt_masks, gt_boxes = targets['masks'], targets['boxes']
        weight = targets['mask_valid'].to(masks.dtype)
        src = masks[:, None].float()
        with torch.no_grad():
            coords = self.sample_loss_points(src)
            point_targets = point_sample(gt_masks[:, None].float(),
                                         coords).squeeze(1)
        point_preds = point_sample(src, coords).squeeze(1)
        num_points = point_preds.shape[1]
        with torch.no_grad():
            prob = point_preds.sigmoid()
            dice = (2 * (prob * point_targets).sum(1) + 1) / (
                prob.sum(1) + point_targets.sum(1) + 1)
        return dict(
            loss_mask=self.loss_mask(
                point_preds,
                point_targets,
                weight=weight[:, None].expand_as(point_preds),
                avg_factor=num_masks * num_points),
            loss_dice=self.loss_dice(
                point_preds, point_targets, weight=weight,
                avg_factor=num_masks),
            loss_iou_score=self.loss_iou_score(
                ious.float(), dice, weight=weight, avg_factor=num_masks),
            loss_bbox=self.loss_bbox(
                boxes.float(), gt_boxes, avg_factor=num_masks),
            loss_giou=self.loss_giou(
                bbox_cxcywh_to_xyxy(boxes.float()),
                bbox_cxcywh_to_xyxy(gt_boxes),
                avg_factor=num_masks))


__all__ = [
    'SemanticSAMPromptEncoder', 'tiny_semantic_sam_prompt_encoder_cfg',
    'PROMPT_TYPE_IDS', 'SCRIBBLE_MODES'
]
