"""Naming data samples in error messages."""
from typing import Any, Optional


def sample_name(index: int, sample: Optional[Any]) -> str:
    """``'sample 3 (img_id=17, data/x.png)'`` for error messages."""
    if sample is None:
        return f'sample {index}'
    meta = sample.metainfo
    return (f"sample {index} (img_id={meta.get('img_id')}, "
            f"{meta.get('img_path')})")
