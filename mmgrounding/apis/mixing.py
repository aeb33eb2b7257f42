"""Build the parts that mix a grounded LMM with an mmdet detector.

One owner of how ``projects/`` build a frozen mmdet detector (config +
checkpoint, under the ``mmdet`` scope, with its own test pipeline reading
arrays) and a :class:`GroundingInferencer` (under the ``mmgrounding``
scope) inside another model's ``__init__``; each scope is restored after.
"""
import copy
from typing import Optional, Tuple, Union

import torch
from mmcv.transforms import Compose
from mmdet.apis import init_detector
from mmdet.utils import get_test_pipeline_cfg
from mmengine.config import Config
from mmengine.registry import DefaultScope

from .grounding_inferencer import GroundingInferencer

ConfigType = Union[str, dict, Config]


def _as_config(config: ConfigType) -> Union[str, Config]:
    if isinstance(config, dict) and not isinstance(config, Config):
        return Config(copy.deepcopy(config))
    return config


def build_mmdet_detector(config: ConfigType,
                         checkpoint: Optional[str] = None,
                         cfg_options: Optional[dict] = None
                         ) -> Tuple[torch.nn.Module, Compose]:
    """``init_detector`` on CPU under the ``mmdet`` scope.

    Returns:
        ``(detector, pipeline)``: the detector in eval mode and its test
        pipeline with the image loader replaced by
        ``mmdet.LoadImageFromNDArray`` (call it with ``dict(img=array,
        img_id=...)``).
    """
    with DefaultScope.overwrite_default_scope('mmdet'):
        detector = init_detector(
            _as_config(config), checkpoint, device='cpu',
            cfg_options=cfg_options)
        pipeline = get_test_pipeline_cfg(detector.cfg.copy())
        pipeline[0].type = 'mmdet.LoadImageFromNDArray'
        return detector, Compose(pipeline)


def build_grounding_inferencer(config: ConfigType,
                               checkpoint: Optional[str] = None
                               ) -> GroundingInferencer:
    """A :class:`GroundingInferencer` on CPU under the ``mmgrounding``
    scope."""
    with DefaultScope.overwrite_default_scope('mmgrounding'):
        return GroundingInferencer(_as_config(config), weights=checkpoint,
                                   device='cpu')


__all__ = ['build_mmdet_detector', 'build_grounding_inferencer']
