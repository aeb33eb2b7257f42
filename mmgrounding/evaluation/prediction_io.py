"""Load a prediction pickle (``tools/test.py --out``) without running code.

``pickle.load`` calls whatever callable the file names, so a ``.pkl`` from
elsewhere can run arbitrary code (``os.system`` through ``__reduce__``).
The files scored offline are mmengine ``DumpResults`` dumps: lists of dicts
holding builtins, numpy arrays/scalars, CPU torch tensors and mmengine /
mmdet data structures (``InstanceData``, ``BitmapMasks``,
``HorizontalBoxes``...). :class:`PredictionUnpickler` resolves only those
globals and refuses any other with :class:`UnsafePickleError`, before
anything is called. A tensor's storage is itself a nested ``torch.save``
blob (``torch.storage._load_from_bytes``); it is read with
``torch.load(weights_only=True)``, torch's own restricted unpickler.

The format stays the one ``DumpResults`` writes, so existing dumps load
unchanged.
"""
import importlib
import io
import pickle
from typing import Any, Callable, Dict, Tuple

#: (module, name) pairs that may be called or instantiated, by module.
_ALLOWED_NAMES: Dict[str, Tuple[str, ...]] = {
    'builtins': ('list', 'dict', 'tuple', 'set', 'frozenset', 'slice',
                 'complex', 'range', 'bytearray', 'bytes', 'str', 'int',
                 'float', 'bool', 'object'),
    'collections': ('OrderedDict', 'defaultdict', 'deque'),
    'copyreg': ('_reconstructor', ),
    'numpy': ('ndarray', 'dtype'),
    'numpy.core.multiarray': ('_reconstruct', 'scalar'),
    'numpy._core.multiarray': ('_reconstruct', 'scalar'),
    'numpy.core.numeric': ('_frombuffer', ),
    'numpy._core.numeric': ('_frombuffer', ),
    'torch': ('Size', 'device', 'Tensor'),
    'torch._utils': ('_rebuild_tensor', '_rebuild_tensor_v2',
                     '_rebuild_tensor_v3', '_rebuild_parameter'),
    'torch._tensor': ('_rebuild_from_type_v2', ),
    'torch.nn.parameter': ('Parameter', ),
}
#: packages whose classes (data containers) may be rebuilt.
_STRUCTURE_PACKAGES = ('mmengine.structures', 'mmdet.structures')


class UnsafePickleError(pickle.UnpicklingError):
    """A prediction pickle names a global outside the allow-list."""


def _safe_codecs_encode(obj: str, encoding: str = 'utf-8',
                        errors: str = 'strict') -> bytes:
    """``_codecs.encode`` as pickle protocol 2 uses it for ``bytes``."""
    if encoding.lower().replace('-', '').replace('_', '') not in (
            'latin1', 'utf8', 'ascii'):
        raise UnsafePickleError(f'refusing _codecs.encode with encoding '
                                f'{encoding!r}')
    return obj.encode(encoding, errors)


def _safe_load_from_bytes(blob: bytes) -> Any:
    """A tensor storage saved by ``torch.save``, read by torch's
    weights-only unpickler (the original calls an unrestricted load)."""
    import torch
    return torch.load(io.BytesIO(blob), weights_only=True)


_SUBSTITUTES: Dict[Tuple[str, str], Callable] = {
    ('_codecs', 'encode'): _safe_codecs_encode,
    ('torch.storage', '_load_from_bytes'): _safe_load_from_bytes,
}


class PredictionUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the allow-listed globals.

    Allowed: safe builtins and containers, numpy array/scalar/dtype
    rebuilding and ``numpy.dtypes`` classes, torch tensor/parameter
    rebuilding, torch dtypes, and the classes defined in
    ``mmengine.structures`` / ``mmdet.structures``. Modules outside the
    list are not even imported.
    """

    def __init__(self, file, source: str = '<pickle>') -> None:
        super().__init__(file)
        self.source = source

    def _refuse(self, module: str, name: str, why: str):
        raise UnsafePickleError(
            f'{self.source}: refusing to load global {module}.{name} '
            f'({why}); a prediction pickle may hold only builtins, numpy, '
            'torch tensors and mmengine/mmdet data structures')

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SUBSTITUTES:
            return _SUBSTITUTES[(module, name)]
        if name in _ALLOWED_NAMES.get(module, ()):
            return super().find_class(module, name)
        if module == 'numpy.dtypes' and name.endswith('DType'):
            return super().find_class(module, name)
        if module == 'torch':
            import torch
            value = getattr(torch, name, None)
            if isinstance(value, torch.dtype):
                return value
            self._refuse(module, name, 'not a torch dtype or tensor type')
        if any(module == p or module.startswith(p + '.')
               for p in _STRUCTURE_PACKAGES):
            value = getattr(importlib.import_module(module), name, None)
            if isinstance(value, type) and not issubclass(
                    value, BaseException) and any(
                        value.__module__ == p
                        or value.__module__.startswith(p + '.')
                        for p in _STRUCTURE_PACKAGES):
                return value
            self._refuse(module, name, 'not a data-structure class')
        self._refuse(module, name, 'not on the allow-list')


def load_prediction_pickle(path: str) -> Any:
    """Load a ``DumpResults`` pickle with :class:`PredictionUnpickler`.

    Raises:
        UnsafePickleError: the file names a global outside the allow-list
            (nothing of it has been called).
        FileNotFoundError: no such file.
    """
    with open(path, 'rb') as f:
        return PredictionUnpickler(f, source=str(path)).load()
