"""Samplers that mix the sources of a ``ConcatDataset``.

* :class:`RandomSourceSampler`: GLaMM's mixing, each sample's source drawn
  at random with probability proportional to ``source_ratio``.
* :class:`MultiSourceSampler`: mmdet's fixed-slots-per-batch sampler that
  refuses a ratio giving a source no slot (mmdet's own loops forever).
"""
from .multi_source_sampler import MultiSourceSampler
from .random_source_sampler import RandomSourceSampler

__all__ = ['RandomSourceSampler', 'MultiSourceSampler']
