"""A ``transformers`` vision tower returning hidden states of chosen layers.

GLaMM and LLaVA-G read CLIP's penultimate layer (``hidden_states[-2]``) with
the CLS token dropped; GLaMM's region encoder additionally reads four layers.
This module is the one seam for both: ``select_layers`` index the
``hidden_states`` tuple exactly as the official code does (index 0 is the
embedding output, -1 the last layer).
"""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmgrounding.registry import MODELS
from .hf_utils import build_hf_vision_model, read_image_processor_stats

# OpenAI CLIP preprocessing statistics (on [0, 1] pixel values).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _as_pair(value) -> Tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


@MODELS.register_module()
class HFVisionEncoder(BaseModule):
    """Vision tower from ``transformers`` (CLIP or any AutoModel ViT).

    Args:
        pretrained_model_name_or_path: local directory of a transformers
            checkpoint (a full CLIP is fine: its vision tower is taken).
        config: instead of a path, a config dict such as
            ``dict(type='CLIPVisionConfig', hidden_size=32, ...)``; the model
            is randomly initialised (tiny test models).
        select_layers: indices into ``hidden_states`` (length
            ``num_hidden_layers + 1``); ``(-2,)`` is the penultimate layer.
        feature: ``'patch'`` drops the prefix (CLS) tokens, ``'cls_patch'``
            keeps them.
        trainable: train the tower; False (default, GLaMM's frozen CLIP):
            no gradients, always in eval mode, forward under no_grad.
            When trained, layers after the deepest selected one (and a final
            LayerNorm) get no gradient: DDP then needs
            ``find_unused_parameters=True``, or ``drop_unused_layers``.
        drop_unused_layers: remove, right after building, the encoder layers
            after the deepest selected hidden state and the modules that only
            read the last layer (``post_layernorm``, ``head``, ``pooler``).
            The selected features are unchanged (the dropped modules never
            reach them); every remaining parameter reaches the output, so a
            trained tower is DDP-safe without ``find_unused_parameters``.
        image_mean, image_std: statistics (on [0, 1]) the tower expects;
            default: the checkpoint's ``preprocessor_config.json``, else
            CLIP's.
        model_kwargs: extra kwargs for ``from_pretrained``/``from_config``.
        init_cfg: mmengine init config (normally None: weights come from HF).
    """

    def __init__(self,
                 pretrained_model_name_or_path: Optional[str] = None,
                 config: Optional[dict] = None,
                 select_layers: Sequence[int] = (-2, ),
                 feature: str = 'patch',
                 trainable: bool = False,
                 image_mean: Optional[Sequence[float]] = None,
                 image_std: Optional[Sequence[float]] = None,
                 model_kwargs: Optional[dict] = None,
                 drop_unused_layers: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if feature not in ('patch', 'cls_patch'):
            raise ValueError(
                f"feature must be 'patch' or 'cls_patch', got {feature!r}")
        self.model = build_hf_vision_model(pretrained_model_name_or_path,
                                           config, model_kwargs)
        hf_cfg = self.model.config
        for key in ('image_size', 'patch_size', 'hidden_size'):
            if not hasattr(hf_cfg, key):
                raise ValueError(f'HFVisionEncoder needs a ViT-like config '
                                 f'with `{key}`; {type(hf_cfg).__name__} '
                                 'has none')
        self.image_size = _as_pair(hf_cfg.image_size)[0]
        grid_h, grid_w = (s // p for s, p in zip(
            _as_pair(hf_cfg.image_size), _as_pair(hf_cfg.patch_size)))
        self.grid_size = (grid_h, grid_w)
        self.num_patches = grid_h * grid_w
        self.hidden_size = int(hf_cfg.hidden_size)
        num_states = int(hf_cfg.num_hidden_layers) + 1
        self.select_layers = tuple(int(i) for i in select_layers)
        if not self.select_layers:
            raise ValueError('select_layers is empty')
        for idx in self.select_layers:
            if not -num_states <= idx < num_states:
                raise ValueError(
                    f'select_layers index {idx} out of range for a model '
                    f'with {num_states} hidden states')
        self.feature = feature
        # absolute hidden-state indices: stay valid when layers are dropped
        self._state_indices = tuple(i % num_states for i in self.select_layers)
        self.drop_unused_layers = drop_unused_layers
        if drop_unused_layers:
            self._drop_unused_layers()

        stats = read_image_processor_stats(pretrained_model_name_or_path)
        mean, std = stats if stats is not None else (CLIP_MEAN, CLIP_STD)
        self.image_mean = tuple(image_mean) if image_mean else tuple(mean)
        self.image_std = tuple(image_std) if image_std else tuple(std)

        self.frozen = not trainable
        if self.frozen:
            self.model.requires_grad_(False)
            self.model.eval()

    def _drop_unused_layers(self) -> None:
        """Cut the layer list after the deepest selected hidden state and
        replace pooling-only modules by ``nn.Identity``."""
        hf_cfg = self.model.config
        num_layers = int(hf_cfg.num_hidden_layers)
        lists = [(name, mod) for name, mod in self.model.named_modules()
                 if isinstance(mod, nn.ModuleList) and len(mod) == num_layers]
        if len(lists) != 1:
            raise ValueError(
                f'HFVisionEncoder.drop_unused_layers: expected one layer list '
                f'of {num_layers} layers in {type(self.model).__name__}, '
                f'found {[name for name, _ in lists]}')
        path, layers = lists[0]
        keep = max(self._state_indices)  # hidden state k = output of layer k
        del layers[keep:]
        hf_cfg.num_hidden_layers = keep
        # e.g. vision_model.encoder.layers -> vision_model
        owner = self.model.get_submodule('.'.join(path.split('.')[:-2]))
        for name in ('post_layernorm', 'head', 'pooler'):
            if isinstance(getattr(owner, name, None), nn.Module):
                setattr(owner, name, nn.Identity())

    def init_weights(self) -> None:
        """Leave the transformers weights alone.

        They come from the checkpoint or from transformers' own init;
        mmengine's init pass, which the Runner runs before training, only
        applies an explicit ``init_cfg``.
        """
        if self.init_cfg is not None:
            super().init_weights()
        self._is_init = True

    def train(self, mode: bool = True) -> 'HFVisionEncoder':
        """Keep a frozen tower in eval mode whatever the runner asks."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def _forward(self, pixels: Tensor) -> Tuple[Tensor, ...]:
        outputs = self.model(pixel_values=pixels, output_hidden_states=True)
        hidden_states = outputs.hidden_states
        feats = []
        for idx in self._state_indices:
            feat = hidden_states[idx]
            num_prefix = feat.shape[1] - self.num_patches
            if num_prefix < 0:
                raise RuntimeError(
                    f'hidden_states[{idx}] has {feat.shape[1]} tokens, fewer '
                    f'than the {self.num_patches} patches of the config')
            if self.feature == 'patch' and num_prefix:
                feat = feat[:, num_prefix:]
            feats.append(feat)
        return tuple(feats)

    def forward(self, pixels: Tensor) -> Tuple[Tensor, ...]:
        """Encode images.

        Args:
            pixels: [B, 3, S, S] normalised with ``image_mean``/``image_std``.

        Returns:
            One [B, N, C] tensor per entry of ``select_layers``; N is the
            number of patches (plus prefix tokens for ``'cls_patch'``).
        """
        if pixels.dim() != 4 or pixels.shape[-2:] != (self.image_size,
                                                       self.image_size):
            raise ValueError(
                f'HFVisionEncoder expects pixels [B, 3, {self.image_size}, '
                f'{self.image_size}], got {tuple(pixels.shape)}')
        pixels = pixels.to(self.model.dtype)
        if self.frozen:
            with torch.no_grad():
                return self._forward(pixels)
        return self._forward(pixels)
