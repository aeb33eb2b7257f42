"""The one exception type for malformed grounding data.

Datasets and transforms raise :class:`GroundingDataError` whenever a record
cannot be turned into a consistent training or evaluation sample (phrase count
differs from the grounding-token count, an annotation id is unknown, a mask is
empty...). The message always names where the bad data came from, so that a
failure deep inside a dataloader worker points straight at the annotation.
"""
from typing import Any, Mapping, Optional


class GroundingDataError(ValueError):
    """A record or sample violates the mmgrounding data contract.

    Args:
        message (str): What is wrong, with the offending values.
        source (str, optional): Dataset name or annotation file.
        img_id (Any, optional): Record / image id.
        field (str, optional): The record field that is wrong.
    """

    def __init__(self,
                 message: str,
                 source: Optional[str] = None,
                 img_id: Any = None,
                 field: Optional[str] = None) -> None:
        self.source = source
        self.img_id = img_id
        self.field = field
        self.reason = message
        where = ', '.join(f'{k}={v!r}' for k, v in (('source', source),
                                                    ('img_id', img_id),
                                                    ('field', field))
                          if v is not None)
        super().__init__(f'[{where}] {message}' if where else message)

    @classmethod
    def from_results(cls, results: Mapping, field: str,
                     message: str) -> 'GroundingDataError':
        """Build the error for the sample held in a pipeline ``results`` dict.

        ``source`` falls back to ``img_path`` when the record names no dataset.
        """
        source = results.get('source', None) or results.get('img_path', None)
        return cls(message, source=source, img_id=results.get('img_id', None),
                   field=field)
