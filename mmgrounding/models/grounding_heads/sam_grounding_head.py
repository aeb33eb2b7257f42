"""GLaMM's grounding head: a SAM mask decoder prompted by [SEG] embeddings.

Built from ``transformers.SamModel``. Per image, the projected [SEG] hidden
states ([M, prompt_channels]) are the sparse prompt (one token each, no
points, no boxes), the dense prompt is SAM's ``no_mask_embed``, and the mask
decoder runs once for all M prompts with ``multimask_output=False``. The
low-resolution logits are upsampled to the padded grounding view, cropped to
the resized image and resized to the original image, as SAM's
``postprocess_masks``; a pixel is foreground where its logit is > 0.
"""
import copy
from typing import Dict, List, Optional, Sequence

import mmdet.models.losses  # noqa: F401 (registers mmdet losses)
import torch
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn import functional as F
from transformers import SamConfig, SamModel

from mmgrounding.registry import MODELS
from mmgrounding.utils.hf_loading import load_pretrained_model
from ..losses import GLAMM_LOSS_DICE, GLAMM_LOSS_MASK, multi_image_mask_loss
from ..vision_encoders.hf_utils import build_hf_config


def build_sam(pretrained_model_name_or_path: Optional[str] = None,
              config: Optional[dict] = None,
              model_kwargs: Optional[dict] = None) -> SamModel:
    """``SamModel`` from a local checkpoint or a (tiny) config.

    A model built from a config gets the initialisation of the original SAM
    where transformers' defaults break small random models: the vision
    ``initializer_range`` becomes 0.02 unless given (the default 1e-10 makes
    the encoder output ~1e-20) and the random Fourier positional matrix is
    drawn with std 1 (transformers uses ``hidden_size // 2``).
    """
    model_kwargs = dict(model_kwargs or {})
    if (pretrained_model_name_or_path is None) == (config is None):
        raise ValueError('sam needs exactly one of '
                         'pretrained_model_name_or_path and config')
    if pretrained_model_name_or_path is not None:
        return load_pretrained_model(
            SamModel, pretrained_model_name_or_path,
            'SAMGroundingHead.sam.pretrained_model_name_or_path',
            **model_kwargs)
    if isinstance(config, dict):
        config = copy.deepcopy(config)
        config.setdefault('type', 'SamConfig')
        vision = config.get('vision_config')
        if vision is None:
            config['vision_config'] = vision = {}
        if isinstance(vision, dict):
            vision.setdefault('initializer_range', 0.02)
    hf_cfg = build_hf_config(config)
    if not isinstance(hf_cfg, SamConfig):
        raise ValueError(f'sam config must be a SamConfig, got '
                         f'{type(hf_cfg).__name__}')
    sam = SamModel._from_config(hf_cfg, **model_kwargs)
    with torch.no_grad():
        sam.shared_image_embedding.positional_embedding.normal_(0., 1.)
    return sam


def check_sam_sizes(cfg: SamConfig) -> None:
    """Raise if the sizes that must agree in a SAM config do not."""
    vis, prm, dec = (cfg.vision_config, cfg.prompt_encoder_config,
                     cfg.mask_decoder_config)
    channels = {
        'vision_config.output_channels': vis.output_channels,
        'prompt_encoder_config.hidden_size': prm.hidden_size,
        'mask_decoder_config.hidden_size': dec.hidden_size,
        '2 * vision_config.num_pos_feats': 2 * vis.num_pos_feats,
    }
    if len(set(channels.values())) != 1:
        raise ValueError(f'SAM channel sizes disagree: {channels}')
    vis_grid = vis.image_size // vis.patch_size
    if prm.image_embedding_size != vis_grid:
        raise ValueError(
            'prompt_encoder_config image_size / patch_size '
            f'({prm.image_embedding_size}) must equal the vision grid '
            f'({vis_grid})')


@MODELS.register_module()
class SAMGroundingHead(BaseModule):
    """SAM mask decoder prompted by projected [SEG] states (GLaMM).

    Args:
        sam: ``dict(pretrained_model_name_or_path=...)`` or
            ``dict(config=dict(vision_config=..., prompt_encoder_config=...,
            mask_decoder_config=...))`` (SamConfig kwargs), optionally with
            ``model_kwargs``.
        prompt_channels: size of the prompt embeddings (SAM: 256).
        image_size: side of the square grounding view (SAM: 1024); must be
            the SAM vision ``image_size``.
        freeze_image_encoder: freeze SAM's ViT (GLaMM: frozen).
        freeze_prompt_encoder: freeze SAM's prompt encoder (GLaMM: frozen).
        freeze_mask_decoder: freeze the mask decoder (GLaMM: trained).
        loss_mask: mask BCE config (default GLaMM's, weight 2.0).
        loss_dice: DICE config (default GLaMM's, weight 0.5).
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 sam: dict,
                 prompt_channels: int = 256,
                 image_size: int = 1024,
                 freeze_image_encoder: bool = True,
                 freeze_prompt_encoder: bool = True,
                 freeze_mask_decoder: bool = False,
                 loss_mask: Optional[dict] = None,
                 loss_dice: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        sam = dict(sam)
        self.sam = build_sam(
            sam.pop('pretrained_model_name_or_path', None),
            sam.pop('config', None), sam.pop('model_kwargs', None))
        if sam:
            raise ValueError(f'Unknown keys in sam: {sorted(sam)}')
        cfg = self.sam.config
        check_sam_sizes(cfg)
        if cfg.mask_decoder_config.hidden_size != prompt_channels:
            raise ValueError(
                f'prompt_channels={prompt_channels} differs from the SAM mask '
                f'decoder hidden_size {cfg.mask_decoder_config.hidden_size}')
        if cfg.vision_config.image_size != image_size:
            raise ValueError(
                f'image_size={image_size} differs from the SAM vision '
                f'image_size {cfg.vision_config.image_size}')
        self.prompt_channels = prompt_channels
        self.image_size = image_size
        self.freeze_image_encoder = freeze_image_encoder
        self.freeze_prompt_encoder = freeze_prompt_encoder

        # The random Fourier matrix is a fixed buffer in the original SAM.
        self.sam.shared_image_embedding.requires_grad_(False)
        if freeze_image_encoder:
            self.sam.vision_encoder.requires_grad_(False)
        if freeze_prompt_encoder:
            self.sam.prompt_encoder.requires_grad_(False)
        if freeze_mask_decoder:
            self.sam.mask_decoder.requires_grad_(False)
        self.loss_mask = MODELS.build(loss_mask or GLAMM_LOSS_MASK)
        self.loss_dice = MODELS.build(loss_dice or GLAMM_LOSS_DICE)
        self.train(self.training)

    def init_weights(self) -> None:
        """Leave the transformers weights alone.

        They come from the checkpoint or from transformers' own init (fixed
        for tiny SAMs in ``build_sam``); mmengine's init pass, which the
        Runner runs before training, only applies an explicit ``init_cfg``.
        """
        if self.init_cfg is not None:
            super().init_weights()
        self._is_init = True

    def train(self, mode: bool = True) -> 'SAMGroundingHead':
        """Frozen SAM parts stay in eval mode."""
        super().train(mode)
        if self.freeze_image_encoder:
            self.sam.vision_encoder.eval()
        if self.freeze_prompt_encoder:
            self.sam.prompt_encoder.eval()
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self.sam.mask_decoder.iou_token.weight.dtype

    def image_embeddings(self, grounding_pixels: Tensor) -> Tensor:
        """SAM image embeddings of the grounding view.

        Args:
            grounding_pixels: [B, 3, G, G], SAM-normalised and padded.

        Returns:
            [B, C, G / patch, G / patch] (no gradient when the encoder is
            frozen).
        """
        if grounding_pixels.dim() != 4 or grounding_pixels.shape[-2:] != (
                self.image_size, self.image_size):
            raise ValueError(
                f'SAMGroundingHead expects grounding pixels [B, 3, '
                f'{self.image_size}, {self.image_size}], got '
                f'{tuple(grounding_pixels.shape)}')
        encoder = self.sam.vision_encoder
        pixels = grounding_pixels.to(
            encoder.patch_embed.projection.weight.dtype)
        if self.freeze_image_encoder:
            with torch.no_grad():
                return encoder(pixels).last_hidden_state
        return encoder(pixels).last_hidden_state

    def upsample_logits(self, low_res: Tensor, input_size: Sequence[int],
                        ori_size: Sequence[int]) -> Tensor:
        """SAM ``postprocess_masks``: [M, h, w] -> [M, H, W] fp32 logits.

        Bilinear (align_corners=False) to the padded view, crop to the
        resized image ``input_size``, bilinear to the original ``ori_size``.
        """
        logits = F.interpolate(
            low_res.float().unsqueeze(1), (self.image_size, self.image_size),
            mode='bilinear', align_corners=False)
        logits = logits[..., :int(input_size[0]), :int(input_size[1])]
        logits = F.interpolate(
            logits, (int(ori_size[0]), int(ori_size[1])),
            mode='bilinear', align_corners=False)
        return logits.squeeze(1)

    def predict_mask_logits(self, image_embedding: Tensor, prompts: Tensor,
                            input_size: Sequence[int],
                            ori_size: Sequence[int]) -> Tensor:
        """Mask logits of all prompts of one image, at the original size.

        Args:
            image_embedding: [C, h, w] from :meth:`image_embeddings`.
            prompts: [M, prompt_channels] projected [SEG] states.
            input_size: (h, w) of the resized image inside the padded view.
            ori_size: (H, W) of the original image.

        Returns:
            [M, H, W] fp32 logits (foreground where > 0).
        """
        if prompts.dim() != 2 or prompts.shape[-1] != self.prompt_channels:
            raise ValueError(f'prompts must be [M, {self.prompt_channels}], '
                             f'got {tuple(prompts.shape)}')
        height, width = int(ori_size[0]), int(ori_size[1])
        if len(prompts) == 0:
            return prompts.new_zeros((0, height, width), dtype=torch.float32)
        dtype = self.dtype
        embedding = image_embedding.to(dtype).unsqueeze(0)
        _, channels, h, w = embedding.shape
        sparse = prompts.to(dtype)[None, :, None, :]  # [1, M, 1, C]
        dense = self.sam.prompt_encoder.no_mask_embed.weight.to(dtype).reshape(
            1, channels, 1, 1).expand(1, channels, h, w)
        image_pe = self.sam.get_image_wide_positional_embeddings().to(dtype)
        low_res, _ = self.sam.mask_decoder(
            image_embeddings=embedding,
            image_positional_embeddings=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False)
        return self.upsample_logits(low_res[0, :, 0], input_size, ori_size)

    def predict(self, image_embeddings: Tensor, prompts: Sequence[Tensor],
                grounding_sizes: Tensor,
                ori_sizes: Sequence[Sequence[int]]) -> List[Tensor]:
        """Mask logits for every prompt of a batch, in ONE decoder call.

        Each prompt becomes its own decoder batch entry paired with its
        image's embedding (the decoder treats (image, prompt) pairs
        independently, so this equals :meth:`predict_mask_logits` per
        image), then logits are upsampled per image to its original size.

        Args:
            image_embeddings: [B, C, h, w].
            prompts: B tensors [M_i, prompt_channels] (M_i may be 0).
            grounding_sizes: [B, 2] (h, w) of each resized image in the pad.
            ori_sizes: B original (H, W).

        Returns:
            B fp32 logit tensors [M_i, H_i, W_i].
        """
        if not len(prompts) == len(image_embeddings) == len(ori_sizes):
            raise ValueError(
                f'got {len(image_embeddings)} image embeddings, '
                f'{len(prompts)} prompt sets, {len(ori_sizes)} sizes')
        for prm in prompts:
            if prm.dim() != 2 or prm.shape[-1] != self.prompt_channels:
                raise ValueError(
                    f'prompts must be [M, {self.prompt_channels}], got '
                    f'{tuple(prm.shape)}')
        counts = [len(prm) for prm in prompts]
        outputs = [
            image_embeddings.new_zeros((0, int(h), int(w)),
                                       dtype=torch.float32)
            for h, w in ori_sizes
        ]
        if sum(counts) == 0:
            return outputs
        dtype = self.dtype
        owner = torch.repeat_interleave(
            torch.arange(len(prompts), device=image_embeddings.device),
            torch.tensor(counts, device=image_embeddings.device))
        embeddings = image_embeddings.to(dtype)[owner]  # [N, C, h, w]
        num, channels, h, w = embeddings.shape
        sparse = torch.cat(list(prompts)).to(dtype)[:, None, None, :]
        dense = self.sam.prompt_encoder.no_mask_embed.weight.to(
            dtype).reshape(1, channels, 1, 1).expand(num, channels, h, w)
        image_pe = self.sam.get_image_wide_positional_embeddings().to(
            dtype).expand(num, -1, -1, -1)
        low_res, _ = self.sam.mask_decoder(
            image_embeddings=embeddings,
            image_positional_embeddings=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False)
        per_image = low_res[:, 0, 0].split(counts, 0)
        for i, logits in enumerate(per_image):
            if counts[i]:
                outputs[i] = self.upsample_logits(
                    logits, tuple(grounding_sizes[i].tolist()), ori_sizes[i])
        return outputs

    def _zero_loss(self, mask_logits: Sequence[Tensor]) -> Tensor:
        zero = sum((logit.sum() * 0. for logit in mask_logits),
                   torch.zeros((), device=self.sam.mask_decoder.iou_token
                               .weight.device))
        for param in self.parameters():
            if param.requires_grad:
                zero = zero + param.sum() * 0.
        return zero

    def loss(self, mask_logits: Sequence[Tensor],
             gt_masks: Sequence[Tensor]) -> Dict[str, Tensor]:
        """GLaMM mask losses: BCE and DICE averaged over all masks.

        Args:
            mask_logits: per image [M_i, H_i, W_i] logits.
            gt_masks: per image [M_i, H_i, W_i] binary masks, same order.

        Returns:
            ``dict(loss_mask=..., loss_dice=...)``, weighted. ``loss_mask``
            always carries a zero term tied to every trainable parameter of
            the head and to the given logits (parts of SAM's decoder are
            unused with a single mask output); with no mask in the batch
            both losses are such zeros, so DDP never waits for a gradient.
        """
        if len(mask_logits) != len(gt_masks):
            raise ValueError(f'{len(mask_logits)} predicted mask sets but '
                             f'{len(gt_masks)} target sets')
        for i, (pred, gt) in enumerate(zip(mask_logits, gt_masks)):
            if tuple(pred.shape) != tuple(gt.shape):
                raise ValueError(
                    f'image {i}: predicted masks {tuple(pred.shape)} and '
                    f'target masks {tuple(gt.shape)} differ (one [SEG] per '
                    'target mask, at the original image size)')
        # Zero tie to every trainable parameter: the IoU head and the extra
        # mask tokens are unused with multimask_output=False, and a batch
        # may hold no mask at all; DDP must still see all of them used.
        zero = self._zero_loss(mask_logits)
        if sum(len(p) for p in mask_logits) == 0:
            return dict(loss_mask=zero, loss_dice=zero.clone())
        return dict(
            loss_mask=multi_image_mask_loss(self.loss_mask, mask_logits,
                                            gt_masks) + zero,
            loss_dice=multi_image_mask_loss(self.loss_dice, mask_logits,
                                            gt_masks))


__all__ = ['SAMGroundingHead', 'build_sam', 'check_sam_sizes']
