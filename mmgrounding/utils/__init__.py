from .checkpoint import allow_checkpoint_globals, safe_checkpoint_globals
from .setup_env import import_all_modules, register_all_modules

__all__ = [
    'allow_checkpoint_globals', 'safe_checkpoint_globals',
    'import_all_modules', 'register_all_modules'
]
