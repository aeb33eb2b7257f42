"""Keep mmengine checkpoints loadable with ``torch.load(weights_only=True)``.

torch>=2.6 loads with ``weights_only=True`` by default and mmengine calls plain
``torch.load``; an mmengine checkpoint also stores the message hub (history
buffers as numpy arrays) and a few numpy scalars, so resuming fails. We allow
exactly those safe types instead of falling back to full unpickling.
"""
from typing import List

import numpy as np
import torch


def safe_checkpoint_globals() -> List[object]:
    """Return the non-tensor types an mmengine checkpoint may contain."""
    from mmengine.config.config import ConfigDict
    from mmengine.logging.history_buffer import HistoryBuffer

    from mmgrounding.engine.hooks.weights_only_checkpoint_hook import \
        PortableHistoryBuffer
    globals_ = [
        HistoryBuffer,
        PortableHistoryBuffer,
        ConfigDict,
        np.ndarray,
        np.dtype,
        np.core.multiarray._reconstruct
        if hasattr(np, 'core') else np._core.multiarray._reconstruct,
        np.core.multiarray.scalar
        if hasattr(np, 'core') else np._core.multiarray.scalar,
    ]
    # numpy>=1.25 exposes one dtype class per scalar type
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in ('Float64DType', 'Float32DType', 'Float16DType',
                     'Int64DType', 'Int32DType', 'Int8DType', 'UInt8DType',
                     'BoolDType', 'StrDType', 'ObjectDType'):
            if hasattr(dtypes, name):
                globals_.append(getattr(dtypes, name))
    return globals_


def allow_checkpoint_globals() -> None:
    """Allow-list the safe checkpoint globals for ``weights_only`` loading."""
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(safe_checkpoint_globals())
