"""transformers glue shared by every HF-backed part (LM, CLIP, SAM)."""
import copy
from typing import Union

import torch
import transformers
from transformers import AutoConfig, PretrainedConfig


def build_hf_config(config: Union[dict, PretrainedConfig]) -> PretrainedConfig:
    """Turn ``dict(type=..., **kwargs)`` into a ``transformers`` config.

    ``type`` is either the name of a config class exported by transformers
    (``'CLIPVisionConfig'``, ``'SamConfig'``) or a ``model_type`` string known
    to ``AutoConfig`` (``'clip_vision_model'``); a dict with ``model_type``
    and no ``type`` also goes through ``AutoConfig.for_model``. A ready
    config is returned unchanged.

    Raises:
        ValueError: when ``type`` is missing or names no known config.
    """
    if isinstance(config, PretrainedConfig):
        return config
    if isinstance(config, dict) and 'type' not in config and \
            'model_type' in config:
        kwargs = copy.deepcopy(dict(config))
        return AutoConfig.for_model(kwargs.pop('model_type'), **kwargs)
    if not isinstance(config, dict) or 'type' not in config:
        raise ValueError('A transformers config must be a PretrainedConfig or '
                         "a dict with a 'type' key (e.g. "
                         "dict(type='CLIPVisionConfig', hidden_size=32)), "
                         f'got {config!r}')
    kwargs = copy.deepcopy(dict(config))
    cfg_type = kwargs.pop('type')
    if isinstance(cfg_type, type) and issubclass(cfg_type, PretrainedConfig):
        return cfg_type(**kwargs)
    config_cls = getattr(transformers, str(cfg_type), None)
    if isinstance(config_cls, type) and issubclass(config_cls,
                                                   PretrainedConfig):
        return config_cls(**kwargs)
    try:
        return AutoConfig.for_model(cfg_type, **kwargs)
    except ValueError as err:
        raise ValueError(
            f'Unknown transformers config type {cfg_type!r}: neither a '
            'config class of transformers nor a registered model_type'
        ) from err



def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count only attended tokens (left or right padding).

    ``attention_mask`` [B, L] 0/1 -> LongTensor [B, L]; padded positions get
    1 (any valid index: they are never attended).
    """
    position_ids = attention_mask.long().cumsum(-1) - 1
    return position_ids.masked_fill(attention_mask == 0, 1)


def masked_rows(values: torch.Tensor, mask: torch.Tensor,
                total: int) -> torch.Tensor:
    """``values[mask]`` without a host sync, when the count is known.

    Args:
        values: Tensor[B, L, ...].
        mask: BoolTensor[B, L].
        total: the number of True entries of ``mask`` (a host value the
            caller already has, e.g. from one batched ``tolist``).

    Returns:
        Tensor[total, ...]: the rows where ``mask``, row-major (as boolean
        indexing orders them). A stable sort of ``~mask`` puts the True
        positions first, in order; boolean indexing would read the count
        from the device (a ``nonzero``) instead.
    """
    order = torch.sort((~mask).reshape(-1).to(torch.uint8),
                       stable=True).indices[:total]
    return values.reshape(-1, *values.shape[2:])[order]
