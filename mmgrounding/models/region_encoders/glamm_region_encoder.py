"""GLaMM region encoder: one LLM embedding per ``<bbox>`` from 4 CLIP layers.

Pipeline (official ``MLVLROIQueryModule`` layout; submodule names follow the
official checkpoint keys so a converter maps them one to one):

1. The patch tokens of ``num_levels`` CLIP layers ([B, N, C], N = g*g) become
   maps [B, C, g, g]; level ``l`` is upsampled (bilinear, align_corners) by
   ``2 ** (num_levels - 1 - l)``, so level 0 is the finest (GLaMM: layers
   14/17/20/23 of CLIP-L at 192/96/48/24 px for a 336 px view).
2. ``mlvl_fuse``: per level a 1x1 ``input_conv`` over the features plus two
   coordinate channels (x, y in [-1, 1]); then ``num_fuse`` rounds in which
   each level keeps the first half of its channels, takes a quarter from the
   next coarser and a quarter from the next finer level (resized to its own
   size) and applies a shared 3x3 ``ConvModule`` (conv, GroupNorm, ReLU).
3. ``roi_align``: per level an mmcv ``RoIAlign`` (``roi_size`` bins, stride =
   view size / map size), a 3x3 conv per level (``pconvs``), sum, ReLU,
   ``flatten_linear`` to ``query_channels``, plus ``pos_embedd`` (MLP with
   LayerNorm of the box normalised to [0, 1]), then ``updims`` to the LLM
   width.
"""
import math
from typing import List, Optional, Sequence

import torch
from mmcv.cnn import ConvModule
from mmdet.models.roi_heads.roi_extractors import BaseRoIExtractor
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn import functional as F

from mmgrounding.registry import MODELS


class MultiLevelFuse(BaseModule):
    """Coordinate-aware input convs + channel-shuffle fusion across levels.

    Args:
        in_channels: channels of the incoming CLIP features.
        embed_channels: channels after ``input_conv`` (and of the fused maps).
        num_levels: number of feature levels.
        num_fuse: number of fusion rounds (each has its own ConvModule).
        norm_cfg: normalisation of the fusion convs (GLaMM: GN, 64 groups).
    """

    def __init__(self,
                 in_channels: int,
                 embed_channels: int,
                 num_levels: int,
                 num_fuse: int = 5,
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if norm_cfg is None:
            norm_cfg = dict(type='GN', num_groups=64, requires_grad=True)
        self.num_levels = num_levels
        self.shuffle_channels = embed_channels // 4
        self.keep_channels = embed_channels - 2 * self.shuffle_channels
        self.input_conv = nn.ModuleList(
            nn.Conv2d(in_channels + 2, embed_channels, 1)
            for _ in range(num_levels))
        self.fuse_convs = nn.ModuleList(
            ConvModule(
                embed_channels,
                embed_channels,
                3,
                padding=1,
                norm_cfg=norm_cfg,
                act_cfg=dict(type='ReLU')) for _ in range(num_fuse))

    @staticmethod
    def _coordinates(feat: Tensor) -> Tensor:
        """[B, 2, H, W] x and y coordinates, each in [-1, 1]."""
        b, _, h, w = feat.shape
        ys = torch.linspace(-1, 1, h, device=feat.device, dtype=feat.dtype)
        xs = torch.linspace(-1, 1, w, device=feat.device, dtype=feat.dtype)
        y, x = torch.meshgrid(ys, xs, indexing='ij')
        return torch.stack([x, y]).unsqueeze(0).expand(b, -1, -1, -1)

    @staticmethod
    def _resize(feat: Tensor, size) -> Tensor:
        out = F.interpolate(
            feat.float(), size=size, mode='bilinear', align_corners=True)
        return out.to(feat.dtype)

    def _fuse_once(self, feats: List[Tensor], conv: nn.Module) -> List[Tensor]:
        keep, quarter = self.keep_channels, self.shuffle_channels
        fused = []
        for lvl, feat in enumerate(feats):
            coarser = feats[min(lvl + 1, self.num_levels - 1)]
            finer = feats[max(lvl - 1, 0)]
            from_coarser = self._resize(coarser[:, keep + quarter:],
                                        feat.shape[-2:])
            from_finer = self._resize(finer[:, keep:keep + quarter],
                                      feat.shape[-2:])
            fused.append(
                conv(torch.cat([feat[:, :keep], from_coarser, from_finer], 1)))
        return fused

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """Fuse ``num_levels`` maps [B, C_in, H_l, W_l] -> [B, C, H_l, W_l]."""
        outs = [
            conv(torch.cat([feat, self._coordinates(feat)], 1))
            for conv, feat in zip(self.input_conv, feats)
        ]
        for conv in self.fuse_convs:
            outs = self._fuse_once(outs, conv)
        return outs


class MultiLevelRoIExtractor(BaseRoIExtractor):
    """RoIAlign on every level, per-level conv, sum, flatten, box embedding.

    Args:
        roi_layer: mmcv RoI layer config (GLaMM: RoIAlign 14x14,
            sampling_ratio 2, aligned).
        in_channels: channels of the fused maps.
        featmap_strides: stride of each level in view pixels.
        query_channels: width of ``flatten_linear`` and ``pos_embedd``.
        pos_hidden_channels: hidden width of ``pos_embedd``.
        out_channels: width of ``updims`` (the LLM hidden size).
    """

    def __init__(self,
                 roi_layer: dict,
                 in_channels: int,
                 featmap_strides: Sequence[float],
                 query_channels: int,
                 pos_hidden_channels: int,
                 out_channels: int,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(roi_layer, in_channels, list(featmap_strides),
                         init_cfg)
        num_levels = len(featmap_strides)
        self.pconvs = nn.ModuleList(
            nn.Conv2d(in_channels, in_channels, 3, padding=1)
            for _ in range(num_levels))
        for conv in self.pconvs:
            nn.init.normal_(conv.weight, 0, 0.01)
            nn.init.zeros_(conv.bias)
        self.pos_embedd = nn.Sequential(
            nn.Linear(4, pos_hidden_channels),
            nn.ReLU(inplace=True),
            nn.LayerNorm(pos_hidden_channels),
            nn.Linear(pos_hidden_channels, query_channels),
            nn.ReLU(inplace=True),
            nn.LayerNorm(query_channels),
        )
        out_h, out_w = self.roi_layers[0].output_size
        self.flatten_linear = nn.Linear(in_channels * out_h * out_w,
                                        query_channels)
        self.updims = nn.Linear(query_channels, out_channels)

    def forward(self, feats: Sequence[Tensor], rois: Tensor,
                norm_boxes: Tensor) -> Tensor:
        """Embed RoIs.

        Args:
            feats: ``num_levels`` maps [B, C, H_l, W_l].
            rois: [R, 5] (batch index, x1, y1, x2, y2) in view pixels.
            norm_boxes: [R, 4] boxes normalised to [0, 1], for ``pos_embedd``.

        Returns:
            [R, out_channels].
        """
        dtype = self.flatten_linear.weight.dtype
        summed = 0
        for roi_layer, pconv, feat in zip(self.roi_layers, self.pconvs,
                                          feats):
            roi_feats = roi_layer(feat.float(), rois.float()).to(dtype)
            summed = summed + pconv(roi_feats)
        queries = self.flatten_linear(F.relu(summed).flatten(1))
        queries = queries + self.pos_embedd(norm_boxes.to(dtype))
        return self.updims(queries)


@MODELS.register_module()
class GLaMMRegionEncoder(BaseModule):
    """Multi-level RoIAlign region encoder of GLaMM.

    Args:
        in_channels: channels of the CLIP features (1024 for CLIP-L).
        out_channels: LLM hidden size (4096 for Vicuna-7B).
        num_levels: number of CLIP layers given to ``forward``.
        image_size: side of the square CLIP view in pixels (336).
        roi_size: RoIAlign output size (14).
        embed_channels: channels of the fused maps (default in_channels).
        query_channels: width of the flattened RoI embedding and of the box
            embedding (GLaMM: 1024).
        pos_hidden_channels: hidden width of the box embedding MLP (256).
        num_fuse: fusion rounds (5).
        norm_cfg: norm of the fusion convs (GN with 64 groups).
        sampling_ratio: RoIAlign sampling ratio (2).
        roi_box_scale: ``None`` places RoIs at the boxes' true positions in
            the view. The released GLaMM multiplies the [0, 1] boxes by 224
            although its maps span a 336 px frame (RoIs shrink towards the
            top-left corner); set ``roi_box_scale=224`` to reproduce released
            checkpoints faithfully.
    """

    def __init__(self,
                 in_channels: int = 1024,
                 out_channels: int = 4096,
                 num_levels: int = 4,
                 image_size: int = 336,
                 roi_size: int = 14,
                 embed_channels: Optional[int] = None,
                 query_channels: int = 1024,
                 pos_hidden_channels: int = 256,
                 num_fuse: int = 5,
                 norm_cfg: Optional[dict] = None,
                 sampling_ratio: int = 2,
                 roi_box_scale: Optional[float] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        embed_channels = embed_channels or in_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_levels = num_levels
        self.image_size = image_size
        self.roi_box_scale = roi_box_scale
        self.mlvl_fuse = MultiLevelFuse(in_channels, embed_channels,
                                        num_levels, num_fuse, norm_cfg)
        # Strides are relative to the finest map: the coarsest level keeps
        # the ViT patch stride, each finer level halves it. They are fixed
        # once the token grid is known (first forward), so store factors.
        self.upsample_factors = [
            2**(num_levels - 1 - lvl) for lvl in range(num_levels)
        ]
        self._roi_layer_cfg = dict(
            type='RoIAlign', output_size=roi_size,
            sampling_ratio=sampling_ratio)
        self.roi_align = MultiLevelRoIExtractor(
            self._roi_layer_cfg,
            embed_channels,
            featmap_strides=[1.0] * num_levels,
            query_channels=query_channels,
            pos_hidden_channels=pos_hidden_channels,
            out_channels=out_channels)
        self._grid = None

    def _set_grid(self, grid: int) -> None:
        """Point every RoIAlign at its level's stride for a g x g grid."""
        if self._grid == grid:
            return
        for layer, factor in zip(self.roi_align.roi_layers,
                                 self.upsample_factors):
            layer.spatial_scale = grid * factor / self.image_size
        self._grid = grid

    def _to_maps(self, feats: Sequence[Tensor]) -> List[Tensor]:
        maps = []
        for lvl, feat in enumerate(feats):
            if feat.dim() != 3 or feat.shape[-1] != self.in_channels:
                raise ValueError(
                    f'level {lvl}: expected patch tokens [B, N, '
                    f'{self.in_channels}], got {tuple(feat.shape)}')
            b, n, c = feat.shape
            grid = math.isqrt(n)
            if grid * grid != n:
                raise ValueError(f'level {lvl}: {n} tokens do not form a '
                                 'square grid (drop the CLS token first)')
            if n != feats[0].shape[1]:
                raise ValueError(f'level {lvl} has {n} tokens, level 0 has '
                                 f'{feats[0].shape[1]}; all levels must '
                                 'share one token grid')
            fmap = feat.transpose(1, 2).reshape(b, c, grid, grid)
            size = grid * self.upsample_factors[lvl]
            fmap = F.interpolate(
                fmap.float(), size=(size, size), mode='bilinear',
                align_corners=True)
            maps.append(fmap.to(self.roi_align.flatten_linear.weight.dtype))
        self._set_grid(grid)
        return maps

    def _zero_outputs(self, feats: Sequence[Tensor],
                      counts: List[int]) -> List[Tensor]:
        """Empty outputs still tied to every trainable parameter (DDP)."""
        zero = sum(f.sum() for f in feats) * 0.
        for param in self.parameters():
            if param.requires_grad:
                zero = zero + param.sum() * 0.
        dtype = self.roi_align.updims.weight.dtype
        return [
            feats[0].new_zeros(n, self.out_channels, dtype=dtype) + zero
            for n in counts
        ]

    def forward(self, feats: Sequence[Tensor],
                boxes: Sequence[Tensor]) -> List[Tensor]:
        """Embed the boxes of every image.

        Args:
            feats: ``num_levels`` tensors [B, N, C] of CLIP patch tokens,
                finest level first (GLaMM: layers 14, 17, 20, 23).
            boxes: B tensors [R_i, 4], xyxy in CLIP-view pixels (the view is
                ``image_size`` square).

        Returns:
            B tensors [R_i, out_channels]. With no box at all, empty tensors
            that stay connected to the trainable parameters.
        """
        if len(feats) != self.num_levels:
            raise ValueError(f'GLaMMRegionEncoder expects {self.num_levels} '
                             f'feature levels, got {len(feats)}')
        if len(boxes) != feats[0].shape[0]:
            raise ValueError(f'GLaMMRegionEncoder got {len(boxes)} box lists '
                             f'for a batch of {feats[0].shape[0]} images')
        for i, b in enumerate(boxes):
            if b.dim() != 2 or b.shape[-1] != 4:
                raise ValueError(f'boxes of image {i} must be [R, 4] xyxy, '
                                 f'got {tuple(b.shape)}')
        counts = [len(b) for b in boxes]
        if sum(counts) == 0:
            return self._zero_outputs(feats, counts)

        maps = self.mlvl_fuse(self._to_maps(feats))
        all_boxes = torch.cat([b.float() for b in boxes])
        norm_boxes = all_boxes / self.image_size
        frame = self.roi_box_scale or self.image_size
        batch_idx = torch.cat([
            all_boxes.new_full((n, 1), i) for i, n in enumerate(counts)
        ])
        rois = torch.cat([batch_idx, norm_boxes * frame], dim=1)
        queries = self.roi_align(maps, rois, norm_boxes)
        return list(queries.split(counts))
