"""Helpers to build ``transformers`` models from a local path or a config dict.

They let a config say either ``pretrained_model_name_or_path='/models/clip'``
(weights read from disk, nothing downloaded) or
``config=dict(type='CLIPVisionConfig', hidden_size=32, ...)`` (a tiny random
model built in-process), with the same downstream code.
"""
import json
import os.path as osp
from typing import Optional, Union

from torch import nn
from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.modeling_auto import MODEL_MAPPING

from mmgrounding.utils.hf_loading import (from_pretrained_local,
                                          load_pretrained_model)
from ..utils.hf import build_hf_config


def model_class_for(config: PretrainedConfig) -> type:
    """The ``AutoModel`` class for a config (e.g. CLIPVisionModel)."""
    try:
        return MODEL_MAPPING[type(config)]
    except KeyError as err:
        raise ValueError(f'transformers has no AutoModel class for config '
                         f'{type(config).__name__}') from err


def build_hf_vision_model(pretrained_model_name_or_path: Optional[str] = None,
                          config: Union[dict, PretrainedConfig, None] = None,
                          model_kwargs: Optional[dict] = None,
                          key: str = 'HFVisionEncoder.'
                          'pretrained_model_name_or_path') -> nn.Module:
    """Build a transformers vision tower from a path or from a config.

    A composite checkpoint (e.g. a full CLIP with text and vision towers)
    yields its vision tower only: the class is chosen from the
    ``vision_config`` and ``from_pretrained`` reads the vision weights.

    Args:
        pretrained_model_name_or_path: local directory (never a hub id);
            the loaded tower records it as its source
            (:func:`mmgrounding.utils.hf_loading.load_pretrained_model`).
        config: used when no path is given; a config dict or object. A
            composite config is reduced to its ``vision_config``.
        model_kwargs: extra kwargs for ``from_pretrained``/``from_config``
            (e.g. ``torch_dtype``, ``attn_implementation``).
        key: config key of the path, for the error on a missing directory.
    """
    model_kwargs = dict(model_kwargs or {})
    if (pretrained_model_name_or_path is None) == (config is None):
        raise ValueError('Give exactly one of pretrained_model_name_or_path '
                         f'and config (got {pretrained_model_name_or_path!r} '
                         f'and {config!r})')
    if pretrained_model_name_or_path is not None:
        hf_cfg = from_pretrained_local(AutoConfig,
                                       pretrained_model_name_or_path, key)
        vision_cfg = getattr(hf_cfg, 'vision_config', None)
        model_cls = model_class_for(
            vision_cfg if isinstance(vision_cfg, PretrainedConfig) else hf_cfg)
        return load_pretrained_model(model_cls, pretrained_model_name_or_path,
                                     key, **model_kwargs)
    hf_cfg = build_hf_config(config)
    vision_cfg = getattr(hf_cfg, 'vision_config', None)
    if isinstance(vision_cfg, PretrainedConfig):
        hf_cfg = vision_cfg
    return model_class_for(hf_cfg)._from_config(hf_cfg, **model_kwargs)


def read_image_processor_stats(path: Optional[str]) -> Optional[tuple]:
    """``(image_mean, image_std)`` from a local ``preprocessor_config.json``.

    Returns None when the path is not a directory or holds no such file.
    """
    if path is None or not osp.isdir(path):
        return None
    file = osp.join(path, 'preprocessor_config.json')
    if not osp.isfile(file):
        return None
    with open(file) as f:
        cfg = json.load(f)
    if 'image_mean' not in cfg or 'image_std' not in cfg:
        return None
    return tuple(cfg['image_mean']), tuple(cfg['image_std'])
