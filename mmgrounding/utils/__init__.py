from .checkpoint import allow_checkpoint_globals, safe_checkpoint_globals
from .hf_loading import (PretrainedPathError, PretrainedSource,
                         check_local_dir, from_pretrained_local,
                         load_pretrained_model, set_offline_mode)
from .setup_env import import_all_modules, register_all_modules

__all__ = [
    'allow_checkpoint_globals', 'safe_checkpoint_globals',
    'import_all_modules', 'register_all_modules', 'PretrainedPathError',
    'PretrainedSource', 'check_local_dir', 'from_pretrained_local',
    'load_pretrained_model', 'set_offline_mode'
]
