from .data_preprocessors import *  # noqa: F401,F403
from .grounding_heads import *  # noqa: F401,F403
from .language_models import *  # noqa: F401,F403
from .lmms import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .projectors import *  # noqa: F401,F403
from .region_encoders import *  # noqa: F401,F403
from .vision_encoders import *  # noqa: F401,F403
