"""LLaVA-Grounding's grounding model: OpenSeeD queried by ``<seg>`` states.

Architecture (``llava_g_design.md`` §1, official ``seg_model``):

1. mmdet ``SwinTransformer`` (Swin-T at full size) -> res2..res5;
2. :class:`OpenSeeDPixelDecoder`: 4-level deformable encoder (1/8 .. 1/64)
   and 1/4 mask features;
3. two-stage query selection: the decoder memory is the 4 levels in
   REVERSED order (1/64 first; proposal sizes 0.05 * 2^level follow that
   order), each memory token -> ``memory_trans_fc`` + ``memory_trans_norm``
   (mmdet ``DeformableDETR.gen_encoder_output_proposals``), scored by the
   max over the sample's real ``<seg>`` columns of
   :class:`SegTokenSimilarity` (invalid proposals -inf); the top
   ``num_queries`` give the content queries and reference boxes (shared box
   MLP + proposal), both DETACHED; no learned query embedding;
4. :class:`OpenSeeDTransformerDecoder` (9 DINO layers) refining the boxes
   with one shared box MLP (``reg_branch``);
5. per prediction set: ``decoder.norm`` -> class logits against the
   ``<seg>`` states and mask = ``mask_embed(q) . mask_features``. The
   decoder outputs are already normed by ``decoder.norm``, so decoder layer
   predictions see it twice (as in the release, where ``decoder_norm`` is
   ``decoder.norm``); their boxes use the once-normed states.

Prediction sets: ``enc_`` (the selected proposals before detaching, boxes =
proposal + box MLP), ``d0.`` (initial prediction from the detached
selection, boxes = the detached references), ``d1.`` .. ``d{L-1}.``
(decoder layers 1..L-1) and the final layer (no prefix).

Contract (``target_kind='instances'``): targets are ``gt_objects`` (one per
object) and ``grounding_instance_ids`` (objects of each token) of each
``DetDataSample``; objects that no token refers to are not targets of this
head. The whole head runs in fp32 with autocast disabled (mmcv's deformable
attention has no bf16 kernel).
"""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mmdet.models.backbones  # noqa: F401 (registers SwinTransformer)
import torch
from mmcv.cnn import build_norm_layer
from mmdet.models.detectors import DeformableDETR
from mmdet.models.layers.transformer import MLP, inverse_sigmoid
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn
from torch.nn import functional as F

from mmgrounding.registry import MODELS
from mmgrounding.structures import GroundingDataError
from ..layers import (OpenSeeDPixelDecoder, OpenSeeDTransformerDecoder,
                      init_openseed_decoder,
                      SegTokenSimilarity, openseed_decoder_layer_cfg,
                      openseed_encoder_cfg)
from .openseed_criterion import OpenSeeDCriterion

#: Official Swin-T backbone (``openseed_swint_lang_*.yaml``).
SWIN_T = dict(
    type='mmdet.SwinTransformer',
    embed_dims=96,
    depths=(2, 2, 6, 2),
    num_heads=(3, 6, 12, 24),
    window_size=7,
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.,
    attn_drop_rate=0.,
    drop_path_rate=0.3,
    patch_norm=True,
    out_indices=(0, 1, 2, 3),
    with_cp=False,
    convert_weights=False)

#: Official pixel decoder for Swin-T.
OPENSEED_PIXEL_DECODER = dict(
    type='OpenSeeDPixelDecoder',
    in_channels=(96, 192, 384, 768),
    strides=(4, 8, 16, 32),
    feat_channels=256,
    out_channels=256,
    num_extra_levels=1,
    encoder=openseed_encoder_cfg(),
    positional_encoding=dict(num_feats=128, normalize=True))

#: Official decoder: 9 layers, eps 1e-5.
OPENSEED_DECODER = dict(
    num_layers=9,
    layer_cfg=openseed_decoder_layer_cfg(),
    inverse_sigmoid_eps=1e-5)


def _source_of(sample: DetDataSample) -> Optional[str]:
    """Annotation file base name of a sample (or its source / image)."""
    meta = sample.metainfo
    for key in ('ann_file', 'source', 'img_path'):
        value = meta.get(key)
        if value:
            return osp.basename(str(value)) if key != 'source' else value
    return None


def tiny_openseed_parts(embed_dims: int = 32,
                        swin_dims: int = 32,
                        swin_heads: Sequence[int] = (1, 2, 4, 8),
                        decoder_layers: int = 2,
                        encoder_layers: int = 1) -> dict:
    """CPU-sized ``backbone`` / ``pixel_decoder`` / ``decoder`` configs
    (design note §8), shared by the tiny OpenSeeD head and the tiny
    Semantic-SAM prompt encoder.

    Swin embed ``swin_dims``, depths 1-1-1-1, heads ``swin_heads``, window
    4; d = ``embed_dims`` (GN(32) needs d % 32 == 0), 4 attention heads, 4
    points, FFN 2d; ``encoder_layers`` / ``decoder_layers`` layers.
    Everything else official.
    """
    if embed_dims % 32:
        raise ValueError('embed_dims must be a multiple of 32 (GroupNorm 32)')
    channels = tuple(swin_dims * 2**i for i in range(4))
    return dict(
        backbone=dict(
            SWIN_T,
            embed_dims=swin_dims,
            depths=(1, 1, 1, 1),
            num_heads=tuple(swin_heads),
            window_size=4,
            drop_path_rate=0.0),
        pixel_decoder=dict(
            OPENSEED_PIXEL_DECODER,
            in_channels=channels,
            feat_channels=embed_dims,
            out_channels=embed_dims,
            encoder=openseed_encoder_cfg(
                embed_dims=embed_dims,
                num_layers=encoder_layers,
                num_heads=4,
                feedforward_channels=2 * embed_dims),
            positional_encoding=dict(
                num_feats=embed_dims // 2, normalize=True)),
        decoder=dict(
            num_layers=decoder_layers,
            layer_cfg=openseed_decoder_layer_cfg(
                embed_dims=embed_dims,
                num_heads=4,
                feedforward_channels=2 * embed_dims),
            inverse_sigmoid_eps=1e-5),
        embed_dims=embed_dims)


def tiny_openseed_head_cfg(prompt_dim: int,
                           embed_dims: int = 32,
                           swin_dims: int = 32,
                           num_queries: int = 20,
                           num_points: int = 256,
                           decoder_layers: int = 2,
                           encoder_layers: int = 1) -> dict:
    """A CPU-sized head (design note §8) for tests and tiny recipes:
    :func:`tiny_openseed_parts` (Swin heads 1-2-4-8), ``num_queries``
    queries, ``num_points`` points for the mask losses and the matching."""
    return dict(
        type='OpenSeeDGroundingHead',
        prompt_dim=prompt_dim,
        **tiny_openseed_parts(embed_dims, swin_dims, (1, 2, 4, 8),
                              decoder_layers, encoder_layers),
        num_queries=num_queries,
        criterion=dict(num_points=num_points, match_num_points=num_points))


@MODELS.register_module()
class OpenSeeDGroundingHead(BaseModule):
    """OpenSeeD grounding model of LLaVA-G as a grounding head.

    Args:
        prompt_dim: width D of the ``<seg>`` states (LLM hidden size).
        backbone: mmdet backbone config with 4 outputs (:data:`SWIN_T`).
        pixel_decoder: :class:`OpenSeeDPixelDecoder` config.
        decoder: :class:`OpenSeeDTransformerDecoder` config.
        embed_dims: d (256).
        num_queries: selected proposals (300).
        criterion: :class:`OpenSeeDCriterion` config.
        predict_rule: ``'top1'`` (default: per token the query with the
            highest logit, score = its sigmoid) or ``'softmax'`` (official:
            softmax over the queries of each token column, every query with
            probability > ``softmax_threshold``, score = that probability;
            a token none passes gets NO instance, where the release emits a
            zero box and an empty mask).
        softmax_threshold: 0.2 (``LLaVA_G_Eval.py``).
        predict_topk: with ``'top1'``, the k highest-scoring queries per
            token (k = 1 by default; Flickr30K Recall@5/10 rank 10), token
            by token, best first.
        mask_threshold: logit threshold of the masks (0).
        prompt_norm: NOT official, off by default. A norm config
            (``dict(type='LN')`` or ``dict(type='BN1d')``, mmcv
            ``build_norm_layer``) applied to the real ``<seg>`` states before
            the similarity. The official logits are e * |h| * cos, so raw
            states of a small random LLM saturate the sigmoids; BN1d
            (statistics over the batch's real tokens; running statistics
            at eval, so batched == unbatched there) is the remedy measured
            for the tiny GLaMM (``reference/tiny_models.md``).
        trainable: False freezes the whole grounding model (stage 3).
    """

    target_kind: str = 'instances'

    def __init__(self,
                 prompt_dim: int,
                 backbone: dict = SWIN_T,
                 pixel_decoder: dict = OPENSEED_PIXEL_DECODER,
                 decoder: dict = OPENSEED_DECODER,
                 embed_dims: int = 256,
                 num_queries: int = 300,
                 criterion: dict = dict(),
                 predict_rule: str = 'top1',
                 softmax_threshold: float = 0.2,
                 predict_topk: int = 1,
                 mask_threshold: float = 0.0,
                 prompt_norm: Optional[dict] = None,
                 trainable: bool = True,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if predict_rule not in ('top1', 'softmax'):
            raise ValueError(f"predict_rule must be 'top1' or 'softmax', "
                             f'got {predict_rule!r}')
        if predict_topk < 1 or predict_topk > num_queries:
            raise ValueError(f'predict_topk must be in [1, {num_queries}], '
                             f'got {predict_topk}')
        self.prompt_dim = prompt_dim
        self.embed_dims = embed_dims
        self.num_queries = num_queries
        self.predict_topk = predict_topk
        self.predict_rule = predict_rule
        self.softmax_threshold = softmax_threshold
        self.mask_threshold = mask_threshold
        self.prompt_norm = None
        if prompt_norm is not None:
            _, self.prompt_norm = build_norm_layer(prompt_norm, prompt_dim)
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
        # Two-stage memory transform (official enc_output / enc_output_norm)
        self.memory_trans_fc = nn.Linear(embed_dims, embed_dims)
        self.memory_trans_norm = nn.LayerNorm(embed_dims)
        # One box MLP shared by the proposals and every decoder layer.
        self.reg_branch = MLP(embed_dims, embed_dims, 4, 3)
        mask_dims = self.pixel_decoder.mask_feature.out_channels
        self.mask_embed = MLP(embed_dims, embed_dims, mask_dims, 3)
        self.similarity = SegTokenSimilarity(embed_dims, prompt_dim)
        criterion = dict(criterion)
        criterion.pop('type', None)
        self.criterion = OpenSeeDCriterion(**criterion)
        self._init_decoder_side()
        # frozen grounding model (LLaVA-G stage 3): no gradients, and a
        # frozen BN prompt norm keeps its running statistics
        self.trainable = trainable
        if not trainable:
            self.requires_grad_(False)

    # ------------------------------------------------------------------
    # initialisation
    def _init_decoder_side(self) -> None:
        init_openseed_decoder(self.decoder, self.reg_branch)

    def train(self, mode: bool = True) -> 'OpenSeeDGroundingHead':
        """A frozen head stays in eval mode whatever the runner asks."""
        return super().train(mode and self.trainable)

    def init_weights(self) -> None:
        super().init_weights()
        self._init_decoder_side()
        self.similarity.init_weights()

    # ------------------------------------------------------------------
    # image side
    def extract_feat(self, pixels: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """Backbone + pixel decoder of the padded view [B, 3, G, G].

        Returns:
            ``(mask_features [B, m, G/4, G/4], [4 maps [B, d, G/s, G/s]]``
            for s = 8, 16, 32, 64), fp32.
        """
        if pixels.dim() != 4 or pixels.shape[1] != 3:
            raise ValueError(f'pixels must be [B, 3, G, G], got '
                             f'{tuple(pixels.shape)}')
        with torch.autocast(device_type=pixels.device.type, enabled=False):
            feats = self.backbone(pixels.float())
            return self.pixel_decoder(list(feats))

    # ------------------------------------------------------------------
    # query side
    def _heads(self, queries: Tensor, mask_features: Tensor,
               prompts: Tensor, with_masks: bool = True
               ) -> Tuple[Tensor, Optional[Tensor]]:
        """decoder norm -> (logits [B, Q, N], masks [B, Q, h, w])."""
        normed = self.decoder.norm(queries)
        logits = self.similarity(normed, prompts)
        masks = None
        if with_masks:
            masks = torch.einsum('bqc,bchw->bqhw', self.mask_embed(normed),
                                 mask_features)
        return logits, masks

    def forward_queries(self, feats: Tuple[Tensor, Sequence[Tensor]],
                        prompts: Tensor, prompt_mask: Tensor,
                        all_sets: bool = True) -> Dict[str, Any]:
        """Two-stage selection + decoder.

        Args:
            feats: :meth:`extract_feat` output.
            prompts: [B, N, D] fp32.
            prompt_mask: [B, N] bool.
            all_sets: also return the deep-supervision sets with masks.

        Returns:
            dict with ``'sets'``: list of ``(prefix, dict(logits, masks,
            boxes))`` (final first; only the final one without
            ``all_sets``, its masks left None), ``'queries'``: final
            twice-normed states [B, Q, d] (for masks of chosen queries).
        """
        mask_features, mlvl = feats
        levels = list(mlvl)[::-1]  # decoder memory: low resolution first
        batch_size = mask_features.shape[0]
        shapes = [lvl.shape[-2:] for lvl in levels]
        memory = torch.cat([lvl.flatten(2).transpose(1, 2) for lvl in levels],
                           1)
        spatial_shapes = torch.as_tensor(
            [tuple(s) for s in shapes], dtype=torch.long,
            device=memory.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(
            (1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        num_valid = memory.shape[1]
        if self.num_queries > num_valid:
            raise ValueError(f'num_queries {self.num_queries} exceeds the '
                             f'{num_valid} memory tokens')
        # mmdet's proposal generator (uses memory_trans_fc / _norm)
        output_memory, output_proposals = \
            DeformableDETR.gen_encoder_output_proposals(
                self, memory, None, spatial_shapes)
        enc_logits = self.similarity(output_memory, prompts)
        scores = SegTokenSimilarity.masked_max(enc_logits, prompt_mask)
        # a sample without tokens: any valid proposal (its losses are 0)
        scores = torch.where(prompt_mask.any(1)[:, None], scores,
                             torch.zeros_like(scores))
        scores = scores.masked_fill(
            output_proposals.sum(-1).isinf(), float('-inf'))
        topk = torch.topk(scores, self.num_queries, dim=1)[1]
        enc_coords = self.reg_branch(output_memory) + output_proposals
        ref_undetached = torch.gather(enc_coords, 1,
                                      topk[..., None].expand(-1, -1, 4))
        tgt_undetached = torch.gather(
            output_memory, 1, topk[..., None].expand(-1, -1,
                                                     self.embed_dims))
        reference = ref_undetached.detach().sigmoid()
        query = tgt_undetached.detach()
        valid_ratios = memory.new_ones((batch_size, len(levels), 2))
        hidden, references = self.decoder(
            query=query,
            value=memory,
            key_padding_mask=None,
            self_attn_mask=None,
            reference_points=reference,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            valid_ratios=valid_ratios,
            reg_branches=[self.reg_branch] * self.decoder.num_layers)
        eps = self.decoder.inverse_sigmoid_eps
        final_boxes = (self.reg_branch(hidden[-1]) + inverse_sigmoid(
            references[-2], eps=eps)).sigmoid()
        final_logits, final_masks = self._heads(
            hidden[-1], mask_features, prompts, with_masks=all_sets)
        sets = [('', dict(logits=final_logits, masks=final_masks,
                          boxes=final_boxes))]
        if all_sets:
            enc_logits_sel, enc_masks = self._heads(tgt_undetached,
                                                    mask_features, prompts)
            sets.append(('enc_', dict(logits=enc_logits_sel, masks=enc_masks,
                                      boxes=ref_undetached.sigmoid())))
            init_logits, init_masks = self._heads(query, mask_features,
                                                  prompts)
            sets.append(('d0.', dict(logits=init_logits, masks=init_masks,
                                     boxes=reference)))
            for lid in range(self.decoder.num_layers - 1):
                logits, masks = self._heads(hidden[lid], mask_features,
                                            prompts)
                boxes = (self.reg_branch(hidden[lid]) + inverse_sigmoid(
                    references[lid], eps=eps)).sigmoid()
                sets.append((f'd{lid + 1}.', dict(logits=logits, masks=masks,
                                                 boxes=boxes)))
        return dict(sets=sets, queries=self.decoder.norm(hidden[-1]),
                    mask_features=mask_features)

    # ------------------------------------------------------------------
    # inputs
    def _check_inputs(self, prompt_embeds: Tensor, grounding_inputs: dict,
                      data_samples: Sequence[DetDataSample]) -> Tensor:
        if prompt_embeds.dim() != 3 or \
                prompt_embeds.shape[-1] != self.prompt_dim:
            raise ValueError(f'prompt_embeds must be [B, N, '
                             f'{self.prompt_dim}], got '
                             f'{tuple(prompt_embeds.shape)}')
        pixels = grounding_inputs['pixels']
        batch_size, num_tokens = prompt_embeds.shape[:2]
        if pixels.shape[0] != batch_size or len(data_samples) != batch_size:
            raise ValueError(
                f'batch sizes differ: prompt_embeds {batch_size}, pixels '
                f'{pixels.shape[0]}, data_samples {len(data_samples)}')
        prompt_mask = grounding_inputs.get('prompt_mask')
        if prompt_mask is None:
            raise ValueError("grounding_inputs needs 'prompt_mask'")
        prompt_mask = prompt_mask.to(prompt_embeds.device).bool()
        if tuple(prompt_mask.shape) != (batch_size, num_tokens):
            raise ValueError(f'prompt_mask {tuple(prompt_mask.shape)} does '
                             f'not match prompt_embeds '
                             f'{tuple(prompt_embeds.shape[:2])}')
        return prompt_mask

    def _norm_prompts(self, prompts: Tensor, prompt_mask: Tensor) -> Tensor:
        """Optional (non-official) norm of the real tokens; padding stays 0."""
        if self.prompt_norm is None or not bool(prompt_mask.any()):
            return prompts
        out = torch.zeros_like(prompts)
        out[prompt_mask] = self.prompt_norm(prompts[prompt_mask])
        return out

    def _feats(self, grounding_inputs: dict) -> Tuple[Tensor, List[Tensor]]:
        feats = grounding_inputs.get('feats')
        if feats is None:
            feats = self.extract_feat(grounding_inputs['pixels'])
        mask_features, mlvl = feats
        return mask_features.float(), [m.float() for m in mlvl]

    def _targets(self, data_samples: Sequence[DetDataSample],
                 prompt_mask: Tensor, sizes: Tensor,
                 canvas: int,
                 prompt_counts: Optional[Sequence[int]] = None,
                 sizes_host: Optional[Sequence[Sequence[int]]] = None
                 ) -> List[InstanceData]:
        """Objects of each sample in the head's normalised canvas frame.

        masks: resized to the image inside the pad, padded to the G x G
        canvas; boxes: normalised cxcywh of the canvas; token_targets:
        [K, N] multi-hot over the padded token columns. ``prompt_counts``
        (real tokens per row, which come first) and ``sizes_host``: host
        copies from the caller, so no per-sample device read is needed.
        """
        device = prompt_mask.device
        num_cols = prompt_mask.shape[1]
        if prompt_counts is not None:  # the caller's rows: real tokens first
            columns = [list(range(int(c))) for c in prompt_counts]
        else:
            columns = [torch.nonzero(row).flatten().tolist()
                       for row in prompt_mask]
        if sizes_host is None:
            sizes_host = sizes.tolist()
        targets = []
        for i, sample in enumerate(data_samples):
            cols = columns[i]
            ids = sample.get('grounding_instance_ids', None)
            if ids is None:
                ids = sample.metainfo.get('grounding_instance_ids')
            where = dict(source=_source_of(sample),
                         img_id=sample.metainfo.get('img_id'),
                         field='grounding_instance_ids')
            if ids is None:
                raise GroundingDataError(
                    'sample has no grounding_instance_ids (needed by a '
                    "target_kind='instances' head)", **where)
            if len(ids) != len(cols):
                raise GroundingDataError(
                    f'{len(ids)} instance-id lists for {len(cols)} '
                    'grounding tokens', **where)
            objects = sample.get('gt_objects', None)
            num_objects = 0 if objects is None else len(objects)
            # built on the host, moved once
            token_targets = torch.zeros((num_objects, num_cols),
                                        dtype=torch.bool)
            for col, refs in zip(cols, ids):
                for k in refs:
                    if not 0 <= int(k) < num_objects:
                        raise GroundingDataError(
                            f'instance id {k} out of range for '
                            f'{num_objects} gt_objects', **where)
                    token_targets[int(k), col] = True
            used = torch.nonzero(token_targets.any(1)).flatten().to(device)
            token_targets = token_targets.to(device)
            if len(used) == 0:
                targets.append(
                    InstanceData(
                        masks=torch.zeros((0, canvas, canvas), device=device),
                        bboxes=torch.zeros((0, 4), device=device),
                        token_targets=token_targets[:0],
                        labels=torch.zeros((0, ), dtype=torch.long,
                                           device=device)))
                continue
            h, w = (int(v) for v in sizes_host[i])
            ori_h, ori_w = sample.metainfo['ori_shape'][:2]
            masks = objects.masks
            masks = masks.to_tensor(torch.float32, device) if hasattr(
                masks, 'to_tensor') else torch.as_tensor(
                    masks, dtype=torch.float32, device=device)
            masks = masks[used.to(masks.device)]
            if tuple(masks.shape[-2:]) != (ori_h, ori_w):
                raise GroundingDataError(
                    f'gt_objects masks {tuple(masks.shape[-2:])} differ '
                    f'from ori_shape {(ori_h, ori_w)}',
                    **dict(where, field='gt_objects'))
            masks = F.interpolate(masks[:, None], size=(h, w),
                                  mode='bilinear', align_corners=False)
            masks = F.pad((masks[:, 0] >= 0.5).float(),
                          (0, canvas - w, 0, canvas - h))
            boxes = getattr(objects.bboxes, 'tensor', objects.bboxes)
            boxes = torch.as_tensor(boxes, dtype=torch.float32,
                                    device=device)[used]
            scale = boxes.new_tensor([w / ori_w, h / ori_h] * 2)
            boxes = bbox_xyxy_to_cxcywh(boxes * scale / canvas)
            targets.append(
                InstanceData(
                    masks=masks,
                    bboxes=boxes,
                    token_targets=token_targets[used],
                    labels=torch.zeros((len(used), ), dtype=torch.long,
                                       device=device)))
        return targets

    def _zero_tie(self, ref: Tensor) -> Tensor:
        """0 x one element of every trainable tensor (DDP sees each one
        used); O(number of tensors), not of their elements."""
        terms = [
            p.view(-1)[0].float() * 0. for p in self.parameters()
            if p.requires_grad and p.numel()
        ]
        zero = ref.new_zeros(())
        return zero + torch.stack(terms).sum() if terms else zero

    # ------------------------------------------------------------------
    # contract
    def loss(self, prompt_embeds: Tensor, grounding_inputs: dict,
             data_samples: Sequence[DetDataSample]) -> Dict[str, Tensor]:
        """Set losses of all prediction sets.

        Returns:
            ``loss_{cls,mask,dice,bbox,iou}`` for the final layer and the
            same keys prefixed ``enc_``, ``d0.`` .. ``d{L-1}.``; every loss
            is a scalar; ``loss_cls`` carries a zero term tied to every
            trainable parameter (DDP), so a batch without tokens still
            returns connected zeros.
        """
        prompt_mask = self._check_inputs(prompt_embeds, grounding_inputs,
                                         data_samples)
        pixels = grounding_inputs['pixels']
        with torch.autocast(device_type=pixels.device.type, enabled=False):
            feats = self._feats(grounding_inputs)
            prompts = self._norm_prompts(prompt_embeds.float(), prompt_mask)
            out = self.forward_queries(feats, prompts, prompt_mask)
            targets = self._targets(
                data_samples, prompt_mask, grounding_inputs['sizes'],
                pixels.shape[-1],
                prompt_counts=grounding_inputs.get('prompt_counts'),
                sizes_host=grounding_inputs.get('sizes_host'))
            losses = self.criterion(out['sets'], prompt_mask, targets)
            losses['loss_cls'] = losses['loss_cls'] + self._zero_tie(
                losses['loss_cls'])
        return losses

    @torch.no_grad()
    def predict(self,
                prompt_embeds: Tensor,
                grounding_inputs: dict,
                data_samples: Sequence[DetDataSample],
                rescale: bool = True) -> List[InstanceData]:
        """Instances answering each real grounding token.

        Returns:
            per sample ``InstanceData(masks Bool [M, H, W], bboxes [M, 4]
            xyxy, scores [M], labels [M] = token index 0..N_i-1)``, at the
            original size (``rescale=True``) or in the G x G canvas.
            ``'top1'``: M = k * N_i (k = ``predict_topk``).
        """
        prompt_mask = self._check_inputs(prompt_embeds, grounding_inputs,
                                         data_samples)
        pixels = grounding_inputs['pixels']
        canvas = pixels.shape[-1]
        sizes = grounding_inputs['sizes']
        with torch.autocast(device_type=pixels.device.type, enabled=False):
            feats = self._feats(grounding_inputs)
            prompts = self._norm_prompts(prompt_embeds.float(), prompt_mask)
            out = self.forward_queries(feats, prompts,
                                       prompt_mask, all_sets=False)
            final = out['sets'][0][1]
            results = []
            for i, sample in enumerate(data_samples):
                cols = torch.nonzero(prompt_mask[i]).flatten()
                logits = final['logits'][i][:, cols]  # [Q, N_i]
                if self.predict_rule == 'top1':
                    k = self.predict_topk
                    top, best = logits.topk(k, dim=0)  # [k, N_i]
                    query_idx = best.t().reshape(-1)
                    labels = torch.arange(
                        len(cols), device=logits.device).repeat_interleave(k)
                    scores = top.t().reshape(-1).sigmoid()
                else:
                    prob = logits.softmax(0)
                    query_idx, labels = torch.nonzero(
                        prob > self.softmax_threshold, as_tuple=True)
                    order = torch.argsort(labels, stable=True)
                    query_idx, labels = query_idx[order], labels[order]
                    scores = prob[query_idx, labels]
                results.append(
                    self._instances(out['queries'][i, query_idx],
                                    out['mask_features'][i],
                                    final['boxes'][i, query_idx], scores,
                                    labels, canvas,
                                    tuple(int(v) for v in sizes[i].tolist()),
                                    sample.metainfo['ori_shape'][:2],
                                    rescale))
        return results

    def _instances(self, queries: Tensor, mask_features: Tensor,
                   boxes: Tensor, scores: Tensor, labels: Tensor,
                   canvas: int, size: Tuple[int, int],
                   ori_shape: Sequence[int], rescale: bool) -> InstanceData:
        """Masks and boxes of chosen queries in the requested frame."""
        h, w = size
        ori_h, ori_w = int(ori_shape[0]), int(ori_shape[1])
        out_h, out_w = (ori_h, ori_w) if rescale else (canvas, canvas)
        xyxy = bbox_cxcywh_to_xyxy(boxes) * canvas
        if len(queries) == 0:
            masks = torch.zeros((0, out_h, out_w), dtype=torch.bool,
                                device=queries.device)
        else:
            logits = torch.einsum('qc,chw->qhw', self.mask_embed(queries),
                                  mask_features)[:, None]
            logits = F.interpolate(logits, size=(canvas, canvas),
                                   mode='bilinear', align_corners=False)
            if rescale:
                logits = F.interpolate(logits[..., :h, :w],
                                       size=(ori_h, ori_w), mode='bilinear',
                                       align_corners=False)
            masks = logits[:, 0] > self.mask_threshold
        if rescale:
            xyxy = xyxy / xyxy.new_tensor([w / ori_w, h / ori_h] * 2)
            xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, ori_w)
            xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, ori_h)
        return InstanceData(
            masks=masks, bboxes=xyxy, scores=scores, labels=labels.long())


__all__ = [
    'OpenSeeDGroundingHead', 'tiny_openseed_head_cfg', 'SWIN_T', 'OPENSEED_PIXEL_DECODER',
    'OPENSEED_DECODER'
]
