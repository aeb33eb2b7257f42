"""mmgrounding: pixel-grounded large multimodal models for MMDetection.

Importing the package registers every mmgrounding module (and mmdet's, which
the parent registry lookup needs) and allow-lists the few safe types that an
mmengine checkpoint holds, so ``custom_imports=dict(imports=['mmgrounding'])``
is all an mmdet config needs.
"""
from .utils import allow_checkpoint_globals, import_all_modules
from .version import __version__

allow_checkpoint_globals()
import_all_modules()

__all__ = ['__version__']
