"""Evaluation: metrics, scoring functions, text encoders and judges.

Importing this package registers every metric in
``mmgrounding.registry.METRICS`` and every text encoder / judge in
``mmgrounding.registry.TASK_UTILS``.
"""
from .functional import *  # noqa: F401,F403
from .judges import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
from .official_gcg import load_official_gcg  # noqa: F401
from .prediction_io import (PredictionUnpickler,  # noqa: F401
                            UnsafePickleError, load_prediction_pickle)
from .text_encoders import *  # noqa: F401,F403
