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
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import mmdet.models.losses  # noqa: F401 (registers mmdet losses)
import torch
from mmdet.structures.mask import mask2bbox
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor
from torch.nn import functional as F
from transformers import SamConfig, SamModel

from mmgrounding.registry import MODELS
from mmgrounding.utils.hf_loading import load_pretrained_model
from ..losses import GLAMM_LOSS_DICE, GLAMM_LOSS_MASK, multi_image_mask_loss
from ..utils.hf import build_hf_config, masked_rows
from ..utils.samples import sample_name


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

    A grounding head of the contract in ``docs/architecture.md``
    (``target_kind='union'``: one union mask per grounding token, read from
    ``gt_instances.masks``): :meth:`extract_feat` (SAM ViT on the grounding
    view), :meth:`loss` (mask BCE + DICE) and :meth:`predict` (one instance
    per grounding token).

    Args:
        sam: ``dict(pretrained_model_name_or_path=...)`` or
            ``dict(config=dict(vision_config=..., prompt_encoder_config=...,
            mask_decoder_config=...))`` (SamConfig kwargs), optionally with
            ``model_kwargs``.
        prompt_channels: size of the prompt embeddings (SAM: 256).
        image_size: side of the square grounding view (SAM: 1024); must be
            the SAM vision ``image_size``.
        trainable: the SAM parts that train, among ``'vision_encoder'``,
            ``'prompt_encoder'`` and ``'mask_decoder'``, or ``'all'``
            (GLaMM: the mask decoder only). Frozen parts stay in eval mode.
            SAM's random Fourier matrix never trains.
        loss_mask: mask BCE config (default GLaMM's, weight 2.0).
        loss_dice: DICE config (default GLaMM's, weight 0.5).
        init_cfg: mmengine init config.
    """

    target_kind = 'union'

    def __init__(self,
                 sam: dict,
                 prompt_channels: int = 256,
                 image_size: int = 1024,
                 trainable: Union[str, Sequence[str]] = ('mask_decoder', ),
                 loss_mask: Optional[dict] = None,
                 loss_dice: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.sam = self.build_model(sam)
        self.check_model(prompt_channels, image_size)
        self.prompt_channels = prompt_channels
        self.prompt_dim = prompt_channels
        self.image_size = image_size
        parts = ('vision_encoder', 'prompt_encoder', 'mask_decoder')
        trainable = parts if trainable == 'all' else tuple(trainable)
        unknown = set(trainable) - set(parts)
        if unknown:
            raise ValueError(f'{type(self).__name__}: unknown trainable parts '
                             f'{sorted(unknown)}; expected some of {parts} '
                             "or 'all'")
        self.trainable = trainable
        self.freeze_image_encoder = 'vision_encoder' not in trainable
        self.freeze_prompt_encoder = 'prompt_encoder' not in trainable

        # The random Fourier matrix is a fixed buffer in the original SAM.
        self.sam.shared_image_embedding.requires_grad_(False)
        for part in parts:
            if part not in trainable:
                getattr(self.sam, part).requires_grad_(False)
        self.loss_mask = MODELS.build(loss_mask or GLAMM_LOSS_MASK)
        self.loss_dice = MODELS.build(loss_dice or GLAMM_LOSS_DICE)
        self.train(self.training)

    # --------------------------------------------- model-specific hooks
    # A SAM-family head (SAM2GroundingHead) overrides build_model,
    # check_model, extract_feat and decode_low_res; targets, losses (BCE +
    # DICE), upsampling, the DDP zero tie and prediction are shared.
    @staticmethod
    def build_model(sam: dict) -> SamModel:
        """The HF model from ``dict(pretrained_model_name_or_path=...)`` or
        ``dict(config=...)`` (+ ``model_kwargs``)."""
        sam = dict(sam)
        model = build_sam(
            sam.pop('pretrained_model_name_or_path', None),
            sam.pop('config', None), sam.pop('model_kwargs', None))
        if sam:
            raise ValueError(f'Unknown keys in sam: {sorted(sam)}')
        return model

    def check_model(self, prompt_channels: int, image_size: int) -> None:
        """Raise unless the model's sizes agree with each other and with
        ``prompt_channels`` / ``image_size``."""
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

    def extract_feat(self, grounding_pixels: Tensor) -> Tensor:
        """SAM image embeddings of the grounding view (contract seam).

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

    def postprocess_masks(self, low_res: Tensor, counts: Sequence[int],
                          grounding_sizes: Tensor,
                          out_sizes: Sequence[Sequence[int]]) -> List[Tensor]:
        """SAM ``postprocess_masks`` for a batch: low-res logits [N, h, w]
        (``counts[i]`` rows per image, in image order) -> per image
        [M_i, H_i, W_i] fp32 logits.

        Bilinear (align_corners=False) to the padded G x G view (all masks
        in one call), crop to the resized image ``grounding_sizes[i]``,
        bilinear to ``out_sizes[i]`` (per image: sizes differ). The sizes
        are read in one host sync.
        """
        view = self._resize(low_res.float(),
                            (self.image_size, self.image_size))
        sizes = grounding_sizes.tolist() if isinstance(
            grounding_sizes, Tensor) else grounding_sizes
        outputs = []
        for i, logits in enumerate(view.split(list(counts), 0)):
            if not counts[i]:
                outputs.append(view.new_zeros((0, *map(int, out_sizes[i]))))
                continue
            outputs.append(self._resize(
                logits[..., :int(sizes[i][0]), :int(sizes[i][1])],
                out_sizes[i]))
        return outputs

    @staticmethod
    def _resize(logits: Tensor, size: Sequence[int]) -> Tensor:
        """Bilinear (align_corners=False) resize of [M, h, w] to ``size``;
        to its own size the resize is the identity (weights 1 and 0) and is
        skipped (its backward costs as much as a real one)."""
        size = (int(size[0]), int(size[1]))
        if tuple(logits.shape[-2:]) == size:
            return logits
        return F.interpolate(
            logits.unsqueeze(1), size, mode='bilinear',
            align_corners=False).squeeze(1)

    def decode_low_res(self, feats: Tensor, owner: Tensor,
                       prompts: Tensor) -> Tensor:
        """The mask decoder on (image, prompt) pairs: [N, h4, w4] logits.

        Each of the N prompts [N, D] is the single sparse token of its own
        decoder batch entry, paired with the embedding of image
        ``owner[n]``; the dense prompt is ``no_mask_embed``; the single-mask
        output (``multimask_output=False``) is kept.
        """
        dtype = self.dtype
        embeddings = feats.to(dtype)[owner]  # [N, C, h, w]
        num, channels, h, w = embeddings.shape
        sparse = prompts.to(dtype)[:, None, None, :]
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
        return low_res[:, 0, 0]

    @staticmethod
    def select_feats(feats: Any, idx: Optional[Sequence[int]]) -> Any:
        """Images ``idx`` of an :meth:`extract_feat` output (a tensor or a
        list of per-level tensors); ``idx=None`` returns the batch-sized
        leading tensor (its length is the batch)."""
        if isinstance(feats, (list, tuple)):
            return feats[0] if idx is None else [f[idx] for f in feats]
        return feats if idx is None else feats[idx]

    @classmethod
    def _device_of(cls, feats: Any) -> torch.device:
        return cls.select_feats(feats, None).device

    def mask_logits(self, feats: Any, prompts: Sequence[Tensor],
                    grounding_sizes: Tensor,
                    out_sizes: Sequence[Sequence[int]]) -> List[Tensor]:
        """Mask logits for every prompt of a batch, in ONE decoder call.

        Each prompt becomes its own decoder batch entry paired with its
        image's embedding (the decoder treats (image, prompt) pairs
        independently), then logits are upsampled per image to its size.

        Args:
            feats: :meth:`extract_feat` output (SAM: [B, C, h, w]).
            prompts: B tensors [M_i, prompt_dim] (M_i may be 0).
            grounding_sizes: [B, 2] (h, w) of each resized image in the pad.
            out_sizes: B output (H, W): the original image sizes, or the
                padded view (G, G) for ``rescale=False``.

        Returns:
            B fp32 logit tensors [M_i, H_i, W_i].
        """
        num_images = len(self.select_feats(feats, None))
        if not len(prompts) == num_images == len(out_sizes):
            raise ValueError(
                f'got {num_images} image embeddings, '
                f'{len(prompts)} prompt sets, {len(out_sizes)} sizes')
        for prm in prompts:
            if prm.dim() != 2 or prm.shape[-1] != self.prompt_dim:
                raise ValueError(
                    f'prompts must be [M, {self.prompt_dim}], got '
                    f'{tuple(prm.shape)}')
        counts = [len(prm) for prm in prompts]
        outputs = [
            torch.zeros((0, int(h), int(w)), dtype=torch.float32,
                        device=self._device_of(feats)) for h, w in out_sizes
        ]
        if sum(counts) == 0:
            return outputs
        owner = torch.repeat_interleave(  # output_size: no device read
            torch.arange(len(prompts), device=self._device_of(feats)),
            torch.tensor(counts, device=self._device_of(feats)),
            output_size=sum(counts))
        low_res = self.decode_low_res(feats, owner,
                                      torch.cat(list(prompts)))
        return self.postprocess_masks(low_res, counts, grounding_sizes,
                                      out_sizes)

    # ------------------------------------------------- grounding contract
    def _prompts(self, prompt_embeds: Tensor, grounding_inputs: dict,
                 num: int) -> List[Tensor]:
        """Per sample, its real prompt rows [N_i, D] of ``prompt_embeds``."""
        mask = grounding_inputs['prompt_mask']
        if prompt_embeds.dim() != 3 or prompt_embeds.shape[0] != num or \
                tuple(mask.shape) != tuple(prompt_embeds.shape[:2]):
            raise ValueError(
                f'{type(self).__name__}: prompt_embeds must be [B={num}, N, '
                f'{self.prompt_dim}] with a [B, N] prompt_mask, got '
                f'{tuple(prompt_embeds.shape)} and {tuple(mask.shape)}')
        counts = grounding_inputs.get('prompt_counts')  # host, from caller
        if counts is None:
            counts = mask.sum(1).tolist()  # one host sync for the batch
        return list(
            masked_rows(prompt_embeds, mask.bool(), sum(counts)).split(
                counts, 0))

    def _logits(self, prompts: List[Tensor], grounding_inputs: dict,
                out_sizes: List[Tuple[int, int]]) -> Dict[int, Tensor]:
        """Logits of the samples with at least one prompt, by index (the
        image side runs only for those, unless ``feats`` were given)."""
        idx = [i for i, p in enumerate(prompts) if p.shape[0] > 0]
        if not idx:
            return {}
        feats = grounding_inputs.get('feats')
        pixels = grounding_inputs['pixels']
        # host sizes when the caller has them (no device read)
        sizes = grounding_inputs.get('sizes_host') or grounding_inputs['sizes']
        if len(idx) < len(prompts):  # else all rows: no gather copy
            pixels = pixels[idx]
            sizes = sizes[idx] if isinstance(sizes, Tensor) else [
                sizes[i] for i in idx]
            feats = None if feats is None else self.select_feats(feats, idx)
        if feats is None:
            feats = self.extract_feat(pixels)
        logits = self.mask_logits(feats, [prompts[i] for i in idx], sizes,
                                  [out_sizes[i] for i in idx])
        return dict(zip(idx, logits))

    @staticmethod
    def _ori_size(index: int, sample) -> Tuple[int, int]:
        shape = sample.metainfo.get('ori_shape')
        if shape is None:
            raise ValueError(f'{sample_name(index, sample)} has no '
                             'ori_shape metainfo')
        return int(shape[0]), int(shape[1])

    def _gt_masks(self, index: int, sample, device) -> Tensor:
        """The union mask of each grounding token: [N_i, H, W] float."""
        gt = sample.get('gt_instances', None)
        masks = getattr(gt, 'masks', None) if gt is not None else None
        if masks is None:
            return torch.zeros((0, *self._ori_size(index, sample)),
                               device=device)
        if isinstance(masks, Tensor):
            return masks.to(device=device, dtype=torch.float32)
        return masks.to_tensor(dtype=torch.float32, device=device)

    def _zero_tie(self) -> Tensor:
        """0 x one element of every trainable parameter: with
        ``multimask_output=False`` SAM's IoU head and extra mask tokens are
        unused, and a batch may hold no prompt at all; DDP must still see
        every trainable parameter used."""
        terms = [
            p.view(-1)[0].float() * 0. for p in self.parameters()
            if p.requires_grad and p.numel()
        ]
        zero = torch.zeros((), device=self.sam.mask_decoder.iou_token
                           .weight.device)
        return zero + torch.stack(terms).sum() if terms else zero

    def loss(self, prompt_embeds: Tensor, grounding_inputs: dict,
             data_samples: Sequence) -> Dict[str, Tensor]:
        """GLaMM mask losses: BCE and DICE averaged over all masks.

        Args:
            prompt_embeds: [B, N, prompt_dim], zero-padded.
            grounding_inputs: ``pixels`` [B, 3, G, G], ``sizes`` [B, 2],
                ``prompt_mask`` [B, N] (optional ``feats``).
            data_samples: ``gt_instances.masks`` holds one (union) mask per
                grounding token, in token order, at the original size.

        Returns:
            ``dict(loss_mask=..., loss_dice=...)``, weighted; ``loss_mask``
            carries the zero tie of :meth:`_zero_tie`, and with no prompt in
            the batch both losses are such zeros.
        """
        prompts = self._prompts(prompt_embeds, grounding_inputs,
                                len(data_samples))
        device = prompt_embeds.device
        gts = []
        for i, (prm, sample) in enumerate(zip(prompts, data_samples)):
            gt = self._gt_masks(i, sample, device)
            if gt.shape[0] != prm.shape[0]:
                raise ValueError(
                    f'{sample_name(i, sample)} has {prm.shape[0]} grounding '
                    f'tokens but {gt.shape[0]} gt masks; each grounding '
                    'token needs exactly one target mask')
            gts.append(gt)
        logits = self._logits(prompts, grounding_inputs,
                              [tuple(g.shape[-2:]) for g in gts])
        for i, pred in logits.items():
            if pred.shape != gts[i].shape:
                raise ValueError(
                    f'{sample_name(i, data_samples[i])}: predicted masks '
                    f'{tuple(pred.shape)} but gt masks are '
                    f'{tuple(gts[i].shape)}')
        zero = self._zero_tie()
        idx = sorted(logits)
        if not idx:
            return dict(loss_mask=zero, loss_dice=zero.clone())
        preds, targets = [logits[i] for i in idx], [gts[i] for i in idx]
        return dict(
            loss_mask=multi_image_mask_loss(self.loss_mask, preds, targets) +
            zero,
            loss_dice=multi_image_mask_loss(self.loss_dice, preds, targets))

    def predict(self,
                prompt_embeds: Tensor,
                grounding_inputs: dict,
                data_samples: Sequence,
                rescale: bool = True) -> List[InstanceData]:
        """One instance per grounding token, in token order.

        Returns, per sample, ``InstanceData`` with ``masks`` (bool [M, H, W]:
        logit > 0; at the original size, or the G x G view when
        ``rescale=False``), ``bboxes`` ([M, 4] xyxy, the masks' boxes),
        ``scores`` ([M], the mean probability inside the mask) and
        ``labels`` ([M], the grounding-token index 0..M-1).
        """
        prompts = self._prompts(prompt_embeds, grounding_inputs,
                                len(data_samples))
        view = (self.image_size, self.image_size)
        sizes = [
            self._ori_size(i, s) if rescale else view
            for i, s in enumerate(data_samples)
        ]
        logits = self._logits(prompts, grounding_inputs, sizes)
        device = prompt_embeds.device
        results = []
        for i, (h, w) in enumerate(sizes):
            inst = InstanceData()
            if i not in logits:
                inst.masks = torch.zeros((0, h, w), dtype=torch.bool,
                                         device=device)
                inst.bboxes = torch.zeros((0, 4), device=device)
                inst.scores = torch.zeros((0, ), device=device)
                inst.labels = torch.zeros((0, ), dtype=torch.long,
                                          device=device)
                results.append(inst)
                continue
            logit = logits[i].float()
            masks = logit > 0
            area = masks.flatten(1).sum(1)
            inst.masks = masks
            inst.bboxes = mask2bbox(masks).float()
            inst.scores = (logit.sigmoid() * masks).flatten(1).sum(1) / \
                area.clamp(min=1)
            inst.labels = torch.arange(len(masks), device=masks.device)
            results.append(inst)
        return results


__all__ = ['SAMGroundingHead', 'build_sam', 'check_sam_sizes']
