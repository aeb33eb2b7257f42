"""Build evaluation helpers (text encoders, judges) from config dicts.

``Registry.build`` switches to the registry of the *current default scope*;
when a metric is used from an mmdet-scoped config that registry is mmdet's
and would not find our types. Looking the type up on our own child registry
(``Registry.get`` searches it and then its parents) works in any scope.
"""
from typing import Any, Union

from mmgrounding.registry import TASK_UTILS


def build_task_util(cfg: Union[dict, Any], what: str) -> Any:
    """Instantiate ``cfg`` (a dict with ``type``) from ``TASK_UTILS``.

    Args:
        cfg: config dict, or an already built object (returned as is).
        what: role of the object, used in error messages.
    """
    if not isinstance(cfg, dict):
        return cfg
    cfg = dict(cfg)
    if 'type' not in cfg:
        raise KeyError(f'The {what} config needs a `type`, got {cfg}')
    obj_type = cfg.pop('type')
    cls = TASK_UTILS.get(obj_type) if isinstance(obj_type, str) else obj_type
    if cls is None:
        raise KeyError(f'{what} type "{obj_type}" is not registered in '
                       'mmgrounding TASK_UTILS')
    return cls(**cfg)
