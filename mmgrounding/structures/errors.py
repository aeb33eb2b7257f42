"""The one exception type for malformed grounding data.

Datasets and transforms raise :class:`GroundingDataError` whenever a record
cannot be turned into a consistent training or evaluation sample (phrase count
differs from the grounding-token count, an annotation id is unknown, a mask is
empty, an image cannot be read...). The message always names where the bad
data came from, so that a failure deep inside a dataloader worker points
straight at the annotation: the annotation file's base name, the record id
exactly as written in that file (``'000000000101'`` stays a string), the
field (the JSON key) and, when short, the offending value.
"""
import os.path as osp
from typing import Any, Mapping, Optional

#: Longest ``repr`` of a bad value quoted in a message.
MAX_VALUE_CHARS = 80


def short_repr(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (``...`` marks a cut)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


class GroundingDataError(ValueError):
    """A record or sample violates the mmgrounding data contract.

    The message reads ``[source=..., file=..., record=..., field=...]
    reason (value: ...)``; only the known parts are shown.

    Args:
        message (str): What is wrong, and what was expected.
        source (str, optional): Dataset name (``'refcoco'``, ``'gvc'``...).
        img_id (Any, optional): The record's image id (shown only when
            ``record`` is not given).
        field (str, optional): The field that is wrong, named as in the
            annotation file (``'segmentation'``, ``'gd_ls[2]'``...).
        file (str, optional): The annotation file; only its base name is
            kept and shown.
        record (Any, optional): The record id exactly as written in
            ``file`` (its ``repr`` is shown, so ``'0001'`` differs from
            ``1``).
        value (Any, optional): The offending value, quoted when short.
    """

    _NOT_GIVEN = object()

    def __init__(self,
                 message: str,
                 source: Optional[str] = None,
                 img_id: Any = None,
                 field: Optional[str] = None,
                 file: Optional[str] = None,
                 record: Any = None,
                 value: Any = _NOT_GIVEN) -> None:
        self.source = source
        self.img_id = img_id if img_id is not None else record
        self.field = field
        self.file = osp.basename(str(file)) if file else None
        self.record = record
        self.value = None if value is self._NOT_GIVEN else value
        self.reason = message
        parts = [('source', source), ('file', self.file),
                 ('record', record)]
        if record is None:
            parts.append(('img_id', img_id))
        parts.append(('field', field))
        where = ', '.join(f'{k}={v!r}' for k, v in parts if v is not None)
        text = f'[{where}] {message}' if where else message
        if value is not self._NOT_GIVEN:
            text += f' (value: {short_repr(value)})'
        super().__init__(text)

    def __reduce__(self):
        # picklable across dataloader workers despite the keyword arguments
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))

    @classmethod
    def from_results(cls, results: Mapping, field: str, message: str,
                     **kwargs) -> 'GroundingDataError':
        """Build the error for the sample held in a pipeline ``results`` dict.

        The dataset stores ``ann_file`` (base name) and ``record_id`` (as
        written in that file) in every record; ``source`` falls back to
        ``img_path`` when the record names no dataset. ``kwargs`` (e.g.
        ``value=``) are passed on.
        """
        source = results.get('source', None) or results.get('img_path', None)
        return cls(message, source=source, img_id=results.get('img_id', None),
                   field=field, file=results.get('ann_file', None),
                   record=results.get('record_id', None), **kwargs)


def _rebuild(cls, text: str, state: dict) -> GroundingDataError:
    err = Exception.__new__(cls)
    err.args = (text, )
    err.__dict__.update(state)
    return err
