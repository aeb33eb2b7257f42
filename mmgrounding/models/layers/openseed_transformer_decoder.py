"""DINO decoder of OpenSeeD: mmdet's ``DinoTransformerDecoder`` with the
official ``inverse_sigmoid`` eps and a sine embedding sized to the width.

The layer layout (self-attn -> norm -> deformable cross-attn -> norm -> FFN
-> norm, post-norm), the ``ref_point_head`` MLP(2d, d, d, 2) on the sine
embedding of the 4-d reference box and the iterative refinement with a
per-layer regression branch are mmdet's. Two facts differ:

- the official refinement inverts the sigmoid with eps 1e-5, mmdet with
  1e-3 (``inverse_sigmoid_eps``; 1e-3 keeps mmdet's behaviour);
- the sine embedding has d/2 frequencies per coordinate, so the
  ``ref_point_head`` input is 2d at any width (mmdet hard-codes 128 per
  coordinate, which equals d/2 only for d = 256).
"""
from typing import Sequence, Tuple

import torch
from mmdet.models.layers.transformer import (DinoTransformerDecoder,
                                             coordinate_to_encoding,
                                             inverse_sigmoid)
from mmcv.cnn.bricks.transformer import MultiScaleDeformableAttention
from torch import Tensor, nn

from mmgrounding.registry import MODELS


def openseed_decoder_layer_cfg(embed_dims: int = 256,
                               num_heads: int = 8,
                               num_levels: int = 4,
                               num_points: int = 4,
                               feedforward_channels: int = 2048) -> dict:
    """Config of one official decoder layer (dropout 0, FFN 2048, ReLU)."""
    return dict(
        self_attn_cfg=dict(
            embed_dims=embed_dims,
            num_heads=num_heads,
            dropout=0.0,
            batch_first=True),
        cross_attn_cfg=dict(
            embed_dims=embed_dims,
            num_levels=num_levels,
            num_heads=num_heads,
            num_points=num_points,
            dropout=0.0,
            batch_first=True),
        ffn_cfg=dict(
            embed_dims=embed_dims,
            feedforward_channels=feedforward_channels,
            num_fcs=2,
            ffn_drop=0.0,
            act_cfg=dict(type='ReLU', inplace=True)))


def init_openseed_decoder(decoder: nn.Module, reg_branch: nn.Module) -> None:
    """Official decoder init, shared by the grounding head and the prompt
    encoder: xavier-uniform matrices, deformable attention's own init, a
    zero last layer of the shared box MLP ``reg_branch``."""
    for p in decoder.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    for m in decoder.modules():
        if isinstance(m, MultiScaleDeformableAttention):
            m.init_weights()
    nn.init.constant_(reg_branch.layers[-1].weight, 0.)
    nn.init.constant_(reg_branch.layers[-1].bias, 0.)


@MODELS.register_module()
class OpenSeeDTransformerDecoder(DinoTransformerDecoder):
    """``DinoTransformerDecoder`` with a configurable refinement eps.

    Args:
        num_layers: decoder layers (official 9).
        layer_cfg: ``DeformableDetrTransformerDecoderLayer`` config.
        inverse_sigmoid_eps: eps of ``inverse_sigmoid`` in the refinement
            (official 1e-5).
        return_intermediate: must stay True (every layer is supervised).
    """

    def __init__(self,
                 num_layers: int = 9,
                 layer_cfg: dict = openseed_decoder_layer_cfg(),
                 inverse_sigmoid_eps: float = 1e-5,
                 return_intermediate: bool = True,
                 init_cfg=None) -> None:
        self.inverse_sigmoid_eps = inverse_sigmoid_eps
        super().__init__(
            num_layers=num_layers,
            layer_cfg=layer_cfg,
            post_norm_cfg=None,
            return_intermediate=return_intermediate,
            init_cfg=init_cfg)

    def forward(self, query: Tensor, value: Tensor, key_padding_mask: Tensor,
                self_attn_mask: Tensor, reference_points: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor,
                valid_ratios: Tensor, reg_branches: Sequence,
                **kwargs) -> Tuple[Tensor, Tensor]:
        """Run all layers with iterative box refinement.

        Args:
            query: [B, Q, d] content queries.
            value: [B, S, d] flattened memory.
            key_padding_mask: [B, S] (True = padding) or None.
            self_attn_mask: [Q, Q] or None.
            reference_points: [B, Q, 4] initial boxes, normalised cxcywh.
            spatial_shapes: [L, 2] (h, w) of each memory level.
            level_start_index: [L].
            valid_ratios: [B, L, 2].
            reg_branches: one box MLP per layer (may be the same module).

        Returns:
            ``(hidden [num_layers, B, Q, d]`` normed by ``self.norm``,
            ``references [num_layers + 1, B, Q, 4])``: the initial boxes
            and each layer's refined boxes (not detached, as in mmdet and
            the official release; only the input of the next layer is).
        """
        if len(reg_branches) != self.num_layers:
            raise ValueError(f'{len(reg_branches)} regression branches for '
                             f'{self.num_layers} layers')
        num_feats = self.embed_dims // 2
        intermediate = []
        references = [reference_points]
        for lid, layer in enumerate(self.layers):
            ref_input = reference_points[:, :, None] * torch.cat(
                [valid_ratios, valid_ratios], -1)[:, None]
            sine = coordinate_to_encoding(
                ref_input[:, :, 0, :], num_feats=num_feats)
            query_pos = self.ref_point_head(sine)
            query = layer(
                query,
                query_pos=query_pos,
                value=value,
                key_padding_mask=key_padding_mask,
                self_attn_mask=self_attn_mask,
                spatial_shapes=spatial_shapes,
                level_start_index=level_start_index,
                valid_ratios=valid_ratios,
                reference_points=ref_input,
                **kwargs)
            delta = reg_branches[lid](query)
            new_reference = (delta + inverse_sigmoid(
                reference_points, eps=self.inverse_sigmoid_eps)).sigmoid()
            reference_points = new_reference.detach()
            intermediate.append(self.norm(query))
            references.append(new_reference)
        return torch.stack(intermediate), torch.stack(references)


__all__ = ['OpenSeeDTransformerDecoder', 'openseed_decoder_layer_cfg']
