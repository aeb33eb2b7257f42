from .distributed import prepare_distributed  # noqa: F401
from .hooks import *  # noqa: F401,F403
from .strategies import *  # noqa: F401,F403
from .grouped_optim_constructor import (  # noqa: F401
    GroupedOptimWrapperConstructor, merge_param_groups)
