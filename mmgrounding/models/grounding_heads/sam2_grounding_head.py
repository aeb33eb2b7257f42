"""A SAM2 mask decoder prompted by grounding-token embeddings.

Built from ``transformers.Sam2Model`` (Hiera image encoder + FPN neck,
SAM2 prompt encoder and mask decoder), used as GLaMM uses SAM: per image the
projected grounding-token states ([M, prompt_channels]) are the sparse
prompt (one token each, no points, no boxes), the dense prompt is
``no_mask_embed``, and the decoder runs once for all prompts of the batch
with ``multimask_output=False``. What differs from SAM:

- the image side is SAM2's: the last FPN level plus ``no_memory_embedding``
  (SAM2's image-only mode: no memory of earlier frames) is the image
  embedding; the two finer levels, through the mask decoder's
  ``conv_s0`` / ``conv_s1``, are the high-resolution features its upscaler
  adds (these two convs belong to the decoder and train with it even when
  the image encoder is frozen);
- SAM2 at inference may swap the single-mask output for the most stable
  multimask output (``dynamic_multimask_via_stability``); a grounding token
  trains only the single-mask output, so the head turns that off.

Targets (one union mask per grounding token), GLaMM's BCE + DICE, the
upsampling to the original size, the boxes from masks and the DDP zero tie
are :class:`SAMGroundingHead`'s.
"""
import copy
from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor
from transformers import Sam2Config, Sam2Model

from mmgrounding.registry import MODELS
from mmgrounding.utils.hf_loading import load_pretrained_model
from ..utils.hf import build_hf_config
from .sam_grounding_head import SAMGroundingHead


def build_sam2(pretrained_model_name_or_path: Optional[str] = None,
               config: Optional[dict] = None,
               model_kwargs: Optional[dict] = None) -> Sam2Model:
    """``Sam2Model`` from a local checkpoint or a (tiny) ``Sam2Config``
    dict (transformers' own initialisation)."""
    model_kwargs = dict(model_kwargs or {})
    if (pretrained_model_name_or_path is None) == (config is None):
        raise ValueError('sam2 needs exactly one of '
                         'pretrained_model_name_or_path and config')
    if pretrained_model_name_or_path is not None:
        return load_pretrained_model(
            Sam2Model, pretrained_model_name_or_path,
            'SAM2GroundingHead.sam2.pretrained_model_name_or_path',
            **model_kwargs)
    if isinstance(config, dict):
        config = copy.deepcopy(config)
        config.setdefault('type', 'Sam2Config')
    hf_cfg = build_hf_config(config)
    if not isinstance(hf_cfg, Sam2Config):
        raise ValueError(f'sam2 config must be a Sam2Config, got '
                         f'{type(hf_cfg).__name__}')
    return Sam2Model._from_config(hf_cfg, **model_kwargs)


def check_sam2_sizes(cfg: Sam2Config, prompt_channels: int,
                     image_size: int) -> None:
    """Raise if the sizes that must agree in a SAM2 config do not."""
    vis, prm, dec = (cfg.vision_config, cfg.prompt_encoder_config,
                     cfg.mask_decoder_config)
    channels = {
        'prompt_channels': prompt_channels,
        'vision_config.fpn_hidden_size': vis.fpn_hidden_size,
        'prompt_encoder_config.hidden_size': prm.hidden_size,
        'mask_decoder_config.hidden_size': dec.hidden_size,
    }
    if len(set(channels.values())) != 1:
        raise ValueError(f'SAM2 channel sizes disagree: {channels}')
    sizes = {
        'image_size': image_size,
        'prompt_encoder_config.image_size': prm.image_size,
        'vision_config.backbone_config.image_size':
        tuple(vis.backbone_config.image_size),
    }
    if sizes['vision_config.backbone_config.image_size'] != (image_size,
                                                             image_size) \
            or prm.image_size != image_size:
        raise ValueError(f'SAM2 image sizes disagree: {sizes}')
    grid = image_size // prm.patch_size
    last = tuple(vis.backbone_feature_sizes[-1])
    if last != (grid, grid):
        raise ValueError(
            f'the last backbone_feature_sizes entry {last} must be the '
            f'prompt-encoder grid ({grid}, {grid}) = image_size / patch_size')
    if vis.num_feature_levels != 3:
        raise ValueError('SAM2GroundingHead needs num_feature_levels=3 (the '
                         'image embedding and two high-resolution levels), '
                         f'got {vis.num_feature_levels}')


@MODELS.register_module()
class SAM2GroundingHead(SAMGroundingHead):
    """SAM2 mask decoder prompted by projected grounding-token states.

    A grounding head of the contract in ``docs/architecture.md``
    (``target_kind='union'``), usable by GLaMM (behind its ``[SEG]``
    projector) and by LLaVA-G (behind a ``seg_projector`` from the LM width
    to ``prompt_channels``).

    Args:
        sam2: ``dict(pretrained_model_name_or_path=...)`` or
            ``dict(config=dict(vision_config=..., prompt_encoder_config=...,
            mask_decoder_config=...))`` (Sam2Config kwargs), optionally with
            ``model_kwargs``.
        prompt_channels: width of the prompt embeddings (SAM2: 256).
        image_size: side of the square grounding view (SAM2: 1024).
        trainable: SAM2 parts that train, among ``'vision_encoder'`` (with
            ``no_memory_embedding``), ``'prompt_encoder'`` and
            ``'mask_decoder'`` (incl. ``conv_s0`` / ``conv_s1``), or
            ``'all'``.
        loss_mask, loss_dice, init_cfg: as :class:`SAMGroundingHead`.
    """

    def __init__(self,
                 sam2: dict,
                 prompt_channels: int = 256,
                 image_size: int = 1024,
                 trainable: Union[str, Sequence[str]] = ('mask_decoder', ),
                 loss_mask: Optional[dict] = None,
                 loss_dice: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            sam=sam2,
            prompt_channels=prompt_channels,
            image_size=image_size,
            trainable=trainable,
            loss_mask=loss_mask,
            loss_dice=loss_dice,
            init_cfg=init_cfg)
        self.sam.no_memory_embedding.requires_grad_(
            not self.freeze_image_encoder)
        # a grounding token trains the single-mask output only
        self.sam.mask_decoder.dynamic_multimask_via_stability = False

    @staticmethod
    def build_model(sam: dict) -> Sam2Model:
        sam = dict(sam)
        model = build_sam2(
            sam.pop('pretrained_model_name_or_path', None),
            sam.pop('config', None), sam.pop('model_kwargs', None))
        if sam:
            raise ValueError(f'Unknown keys in sam2: {sorted(sam)}')
        return model

    def check_model(self, prompt_channels: int, image_size: int) -> None:
        check_sam2_sizes(self.sam.config, prompt_channels, image_size)

    def extract_feat(self, grounding_pixels: Tensor) -> List[Tensor]:
        """SAM2 image features of the grounding view (contract seam).

        Args:
            grounding_pixels: [B, 3, G, G], normalised and padded.

        Returns:
            ``[s0 [B, C/8, G/4, G/4], s1 [B, C/4, G/8, G/8],
            embedding [B, C, G/16, G/16]]``: the two high-resolution levels
            after ``conv_s0`` / ``conv_s1`` and the image embedding (last
            FPN level + ``no_memory_embedding``).
        """
        if grounding_pixels.dim() != 4 or grounding_pixels.shape[-2:] != (
                self.image_size, self.image_size):
            raise ValueError(
                f'SAM2GroundingHead expects grounding pixels [B, 3, '
                f'{self.image_size}, {self.image_size}], got '
                f'{tuple(grounding_pixels.shape)}')
        encoder = self.sam.vision_encoder
        pixels = grounding_pixels.to(
            next(encoder.parameters()).dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled()
                                    and not self.freeze_image_encoder):
            fpn = list(encoder(pixels).fpn_hidden_states)  # fine to coarse
        decoder = self.sam.mask_decoder
        s0 = decoder.conv_s0(fpn[0].to(decoder.conv_s0.weight.dtype))
        s1 = decoder.conv_s1(fpn[1].to(decoder.conv_s1.weight.dtype))
        memory = self.sam.no_memory_embedding  # [1, 1, C]
        embedding = fpn[2] + memory.reshape(1, -1, 1, 1).to(fpn[2].dtype)
        return [s0, s1, embedding]

    def decode_low_res(self, feats: List[Tensor], owner: Tensor,
                       prompts: Tensor) -> Tensor:
        """SAM2's mask decoder on (image, prompt) pairs: [N, G/4, G/4]."""
        dtype = self.dtype
        s0, s1, embedding = [f.to(dtype)[owner] for f in feats]
        num, channels, h, w = embedding.shape
        sparse = prompts.to(dtype)[:, None, None, :]
        dense = self.sam.prompt_encoder.no_mask_embed.weight.to(
            dtype).reshape(1, channels, 1, 1).expand(num, channels, h, w)
        image_pe = self.sam.get_image_wide_positional_embeddings().to(
            dtype).expand(num, -1, -1, -1)
        low_res = self.sam.mask_decoder(
            image_embeddings=embedding,
            image_positional_embeddings=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
            high_resolution_features=[s0, s1])[0]
        return low_res[:, 0, 0]


__all__ = ['SAM2GroundingHead', 'build_sam2', 'check_sam2_sizes']
