"""OpenSeeD's multi-scale deformable pixel decoder (``encoder_deform``).

Shared by the OpenSeeD grounding head and the Semantic-SAM visual-prompt
encoder of LLaVA-Grounding. It differs from mmdet's
``MSDeformAttnPixelDecoder`` (whose sub-modules it reuses) in three facts of
the official release:

- one extra encoder level: a 3x3 stride-2 conv + GN on the last backbone
  map (1/64 for a Swin backbone), so the encoder sees 4 levels;
- the encoder levels are ordered high to low resolution
  (1/8, 1/16, 1/32, 1/64; mmdet orders them 1/32, 1/16, 1/8), which is also
  the order of ``level_encoding`` rows and of the per-level rows of every
  ``sampling_offsets`` / ``attention_weights`` projection;
- the FPN path adds the upsampled 1/8 encoder map to the lateral conv of the
  first backbone map (1/4) and the 1/4 mask features are a 1x1 conv of it.

Submodule names follow mmdet (``input_convs``, ``encoder``,
``level_encoding``, ``lateral_convs``, ``output_convs``, ``mask_feature``)
plus ``extra_convs`` for the downsampled level.
"""
from typing import List, Sequence, Tuple

import torch
from mmcv.cnn import Conv2d, ConvModule
from mmcv.cnn.bricks.transformer import MultiScaleDeformableAttention
from mmdet.models.layers import MSDeformAttnPixelDecoder
from mmdet.models.layers.positional_encoding import SinePositionalEncoding
from mmdet.models.layers.transformer import Mask2FormerTransformerEncoder
from mmdet.models.task_modules.prior_generators import MlvlPointGenerator
from mmengine.model import BaseModule, ModuleList, caffe2_xavier_init
from torch import Tensor, nn
from torch.nn import functional as F

from mmgrounding.registry import MODELS


def openseed_encoder_cfg(embed_dims: int = 256,
                         num_layers: int = 6,
                         num_heads: int = 8,
                         num_points: int = 4,
                         num_levels: int = 4,
                         feedforward_channels: int = 2048) -> dict:
    """Config of the post-norm deformable encoder of the official release.

    Full size: 6 layers, d 256, 8 heads, 4 points, 4 levels, FFN 2048
    (``DECODER.DIM_FEEDFORWARD``), dropout 0, ReLU.
    """
    return dict(
        num_layers=num_layers,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed_dims,
                num_heads=num_heads,
                num_levels=num_levels,
                num_points=num_points,
                dropout=0.0,
                batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims,
                feedforward_channels=feedforward_channels,
                num_fcs=2,
                ffn_drop=0.0,
                act_cfg=dict(type='ReLU', inplace=True))))


@MODELS.register_module()
class OpenSeeDPixelDecoder(MSDeformAttnPixelDecoder):
    """Deformable pixel decoder with OpenSeeD's 4 levels and level order.

    Args:
        in_channels: channels of the backbone maps res2..res5
            (Swin-T: 96, 192, 384, 768).
        strides: their strides (4, 8, 16, 32).
        feat_channels: width d of every level (256).
        out_channels: width of the mask features (256).
        num_extra_levels: stride-2 3x3 conv + GN levels stacked on the last
            backbone map (official: 1, giving 1/64).
        norm_cfg: norm of every conv (GN, 32 groups).
        act_cfg: activation of the FPN output conv (ReLU).
        encoder: ``Mask2FormerTransformerEncoder`` config; its
            ``self_attn_cfg.num_levels`` must equal 3 + ``num_extra_levels``
            (the three deepest backbone maps + the extra ones).
        positional_encoding: sine encoding (``num_feats`` = d / 2,
            normalised, as ``PositionEmbeddingSine(d/2, normalize=True)``).

    ``forward`` returns ``(mask_feature [B, out_channels, H/4, W/4],
    [4 maps [B, d, H/s, W/s] for s = 8, 16, 32, 64])``.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (96, 192, 384, 768),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_extra_levels: int = 1,
                 norm_cfg: dict = dict(type='GN', num_groups=32),
                 act_cfg: dict = dict(type='ReLU'),
                 encoder: dict = openseed_encoder_cfg(),
                 positional_encoding: dict = dict(
                     num_feats=128, normalize=True),
                 init_cfg=None) -> None:
        # The parent's __init__ builds mmdet's level layout (all encoder
        # levels taken from the backbone); the sub-modules are the same, so
        # they are built here with the official layout instead.
        BaseModule.__init__(self, init_cfg=init_cfg)
        if len(in_channels) != len(strides) or len(in_channels) < 2:
            raise ValueError(f'in_channels {tuple(in_channels)} and strides '
                             f'{tuple(strides)} must match, >= 2 levels')
        self.strides = list(strides)
        self.num_input_levels = len(in_channels)
        self.num_backbone_levels = self.num_input_levels - 1
        self.num_extra_levels = num_extra_levels
        self.num_encoder_levels = \
            self.num_backbone_levels + self.num_extra_levels
        attn_levels = encoder['layer_cfg']['self_attn_cfg']['num_levels']
        if attn_levels != self.num_encoder_levels:
            raise ValueError(
                f'encoder attends {attn_levels} levels but the decoder '
                f'builds {self.num_encoder_levels} '
                f'({self.num_backbone_levels} backbone + '
                f'{num_extra_levels} extra)')
        if positional_encoding['num_feats'] * 2 != feat_channels:
            raise ValueError('positional_encoding.num_feats must be '
                             f'feat_channels / 2 = {feat_channels // 2}')
        # 1x1 conv (with bias) + GN on res3, res4, res5, in that order.
        self.input_convs = ModuleList([
            ConvModule(
                in_channels[i],
                feat_channels,
                kernel_size=1,
                bias=True,
                norm_cfg=norm_cfg,
                act_cfg=None) for i in range(1, self.num_input_levels)
        ])
        extra = []
        channels = in_channels[-1]
        for _ in range(num_extra_levels):
            extra.append(
                ConvModule(
                    channels,
                    feat_channels,
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    bias=True,
                    norm_cfg=norm_cfg,
                    act_cfg=None))
            channels = feat_channels
        self.extra_convs = ModuleList(extra)
        self.encoder = Mask2FormerTransformerEncoder(**encoder)
        # (sic) mmdet's attribute name, kept for checkpoint compatibility.
        self.postional_encoding = SinePositionalEncoding(**positional_encoding)
        # Row i belongs to encoder level i (1/8 first).
        self.level_encoding = nn.Embedding(self.num_encoder_levels,
                                           feat_channels)
        # One FPN level on the first backbone map (res2, 1/4): bias-free
        # 1x1 lateral conv + GN, 3x3 output conv + GN + ReLU.
        self.use_bias = norm_cfg is None
        self.lateral_convs = ModuleList([
            ConvModule(
                in_channels[0],
                feat_channels,
                kernel_size=1,
                bias=self.use_bias,
                norm_cfg=norm_cfg,
                act_cfg=None)
        ])
        self.output_convs = ModuleList([
            ConvModule(
                feat_channels,
                feat_channels,
                kernel_size=3,
                stride=1,
                padding=1,
                bias=self.use_bias,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg)
        ])
        self.mask_feature = Conv2d(
            feat_channels, out_channels, kernel_size=1, stride=1, padding=0)
        self.num_outs = self.num_encoder_levels
        self.encoder_strides = list(strides[1:]) + [
            strides[-1] * 2**(k + 1) for k in range(num_extra_levels)
        ]
        # Encoder reference points: pixel centres (offset 0.5), normalised.
        self.point_generator = MlvlPointGenerator(self.encoder_strides)

    def init_weights(self) -> None:
        """Official initialisation (``encoder_deform.py``).

        Input/extra convs xavier-uniform (gain 1, bias 0); FPN and mask convs
        caffe2-xavier; encoder matrices xavier-uniform then the deformable
        attention's own init; level embedding N(0, 1).
        """
        for conv in list(self.input_convs) + list(self.extra_convs):
            nn.init.xavier_uniform_(conv.conv.weight, gain=1)
            nn.init.constant_(conv.conv.bias, 0)
        for conv in list(self.lateral_convs) + list(self.output_convs):
            caffe2_xavier_init(conv.conv, bias=0)
        caffe2_xavier_init(self.mask_feature, bias=0)
        for p in self.encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.encoder.layers.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()
        nn.init.normal_(self.level_encoding.weight, mean=0, std=1)

    def encoder_inputs(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """Projected encoder inputs, high to low resolution (1/8 .. 1/64)."""
        levels = [
            conv(feats[i + 1]) for i, conv in enumerate(self.input_convs)
        ]
        source = feats[-1]
        for conv in self.extra_convs:
            source = conv(source)
            levels.append(source)
        return levels

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """Encode backbone maps res2..res5.

        Args:
            feats: ``num_input_levels`` maps [B, C_i, H/s_i, W/s_i].

        Returns:
            ``(mask_feature, multi_scale_features)``: [B, out_channels, H/4,
            W/4] and the encoder levels [B, d, h_l, w_l] ordered 1/8, 1/16,
            1/32, 1/64.
        """
        if len(feats) != self.num_input_levels:
            raise ValueError(f'expected {self.num_input_levels} backbone '
                             f'maps, got {len(feats)}')
        batch_size = feats[0].shape[0]
        levels = self.encoder_inputs(feats)
        queries, pos_embeds, shapes, refs = [], [], [], []
        for lvl, feat in enumerate(levels):
            h, w = feat.shape[-2:]
            no_pad = feat.new_zeros((batch_size, h, w), dtype=torch.bool)
            pos = self.postional_encoding(no_pad)
            pos = pos + self.level_encoding.weight[lvl].view(1, -1, 1, 1)
            queries.append(feat.flatten(2).transpose(1, 2))
            pos_embeds.append(pos.flatten(2).transpose(1, 2))
            shapes.append((h, w))
            points = self.point_generator.single_level_grid_priors(
                (h, w), lvl, device=feat.device)
            refs.append(points / points.new_tensor(
                [w * self.encoder_strides[lvl], h * self.encoder_strides[lvl]]))
        spatial_shapes = torch.as_tensor(
            shapes, dtype=torch.long, device=feats[0].device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(
            (1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        num_levels = len(levels)
        reference_points = torch.cat(refs, 0)[None, :, None].repeat(
            batch_size, 1, num_levels, 1)
        valid_ratios = reference_points.new_ones((batch_size, num_levels, 2))
        query = torch.cat(queries, 1)
        memory = self.encoder(
            query=query,
            query_pos=torch.cat(pos_embeds, 1),
            key_padding_mask=query.new_zeros(query.shape[:2],
                                             dtype=torch.bool),
            spatial_shapes=spatial_shapes,
            reference_points=reference_points,
            level_start_index=level_start_index,
            valid_ratios=valid_ratios)
        outs = [
            m.transpose(1, 2).reshape(batch_size, -1, h, w) for m, (h, w) in
            zip(memory.split([h * w for h, w in shapes], 1), shapes)
        ]
        lateral = self.lateral_convs[0](feats[0])
        fpn = lateral + F.interpolate(
            outs[0], size=lateral.shape[-2:], mode='bilinear',
            align_corners=False)
        fpn = self.output_convs[0](fpn)
        return self.mask_feature(fpn), outs


__all__ = ['OpenSeeDPixelDecoder', 'openseed_encoder_cfg']
