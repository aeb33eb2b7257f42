"""Helpers shared by the grounding transforms."""
import zlib
from typing import Mapping

import numpy as np


def sample_rng(results: Mapping, seed: int, salt: int = 0
               ) -> np.random.Generator:
    """A random generator fixed by ``seed`` and the sample's identity.

    The identity is ``results['sample_idx']`` (set by mmengine's
    ``BaseDataset.get_data_info``), else a CRC32 of ``img_id``. The same
    sample thus gets the same draws in every epoch, worker and process.
    ``salt`` separates independent streams (templates vs. prompts).
    """
    key = results.get('sample_idx', None)
    if key is None:
        key = zlib.crc32(str(results.get('img_id', '')).encode())
    return np.random.default_rng([int(seed), int(key), int(salt)])
