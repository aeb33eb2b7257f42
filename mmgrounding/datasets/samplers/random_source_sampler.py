"""GLaMM's dataset mixing as an infinite, distributed-aware sampler."""
import itertools
import math
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from mmgrounding.registry import DATA_SAMPLERS


def check_concat_sources(dataset, source_ratio: Sequence[Union[int, float]],
                         owner: str) -> List[float]:
    """Validate ``source_ratio`` against the sources of a ``ConcatDataset``.

    Every source must be non-empty and get a positive, finite ratio: an
    empty source would make an index stream spin forever, a zero ratio
    would silently never draw its source.

    Returns:
        list[float]: the ratios as floats, one per source.
    """
    sizes = getattr(dataset, 'cumulative_sizes', None)
    if sizes is None:
        raise TypeError(f'{owner}: the dataset must be a ConcatDataset (one '
                        'sub-dataset per source), got '
                        f'{type(dataset).__name__}')
    if isinstance(source_ratio, (str, bytes)) or not isinstance(
            source_ratio, Sequence):
        raise TypeError(f'{owner}: source_ratio must be a list of numbers, '
                        f'got {source_ratio!r}')
    if len(source_ratio) != len(sizes):
        raise ValueError(f'{owner}: source_ratio={list(source_ratio)} has '
                         f'{len(source_ratio)} entries but the dataset has '
                         f'{len(sizes)} sources')
    ratios = []
    for k, r in enumerate(source_ratio):
        if isinstance(r, bool) or not isinstance(r, (int, float)) or \
                not math.isfinite(r) or r <= 0:
            raise ValueError(f'{owner}: source_ratio[{k}]={r!r} must be a '
                             'positive finite number (drop the source from '
                             'the ConcatDataset instead of giving it 0)')
        ratios.append(float(r))
    lengths = [b - a for a, b in zip([0] + list(sizes[:-1]), sizes)]
    empty = [k for k, n in enumerate(lengths) if n == 0]
    if empty:
        names = [type(dataset.datasets[k]).__name__ for k in empty]
        raise ValueError(f'{owner}: source(s) {empty} ({names}) are empty; '
                         'a sampler cannot draw from them')
    return ratios


@DATA_SAMPLERS.register_module()
class RandomSourceSampler(Sampler):
    """Infinite sampler drawing each sample's source at random by ratio.

    GLaMM's ``HybridDataset`` (official ``dataset/dataset.py``) picks, for
    every sample, one sub-dataset with probability ``ratio / sum(ratio)``
    and then a sample of it; a batch of 2 thus mixes 4 sources in the
    3:3:3:1 proportion *in expectation* over the optimizer steps, which
    mmdet's ``MultiSourceSampler`` (fixed slots per batch) cannot do when
    the batch is smaller than the number of sources.

    Here the dataset is a ``ConcatDataset`` of the sources. Each source has
    an infinite stream of its indices (a fresh permutation per pass when
    ``shuffle``, seeded with ``seed`` as mmengine's ``InfiniteSampler``),
    sliced by rank so that ranks read disjoint samples of every pass; the
    source of each draw comes from a generator seeded with
    ``(seed, rank)``, so every rank mixes independently and a run is
    reproducible for a given seed and world size. Unlike the official loop
    (a uniformly random sample of the chosen source, with replacement),
    a source is read without replacement within each of its passes.

    Args:
        dataset: ``ConcatDataset`` (``cumulative_sizes``, ``datasets``).
        source_ratio (list[int | float]): positive weight of each source.
        shuffle (bool): shuffle each source's indices every pass.
        seed (int, optional): random seed; ``None`` draws one and
            synchronises it across ranks (``sync_random_seed``).
    """

    #: source draws generated at once (a cache, not a semantic setting)
    _CHUNK = 1024

    def __init__(self,
                 dataset,
                 source_ratio: Sequence[Union[int, float]],
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        ratios = check_concat_sources(dataset, source_ratio,
                                      type(self).__name__)
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.source_ratio = list(source_ratio)
        self.probs = np.asarray(ratios) / sum(ratios)
        self.offsets = [0] + list(dataset.cumulative_sizes[:-1])
        self.sizes = [
            end - start
            for start, end in zip(self.offsets, dataset.cumulative_sizes)
        ]
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self._iterator = self._indices()

    def _source_stream(self, source: int) -> Iterator[int]:
        """This rank's share of an endless sequence of passes over a source
        (global indices of the ``ConcatDataset``)."""

        def passes() -> Iterator[int]:
            g = torch.Generator()
            # the same permutations on every rank: slices are disjoint
            g.manual_seed(self.seed + source)
            size, offset = self.sizes[source], self.offsets[source]
            while True:
                order = torch.randperm(size, generator=g) if self.shuffle \
                    else torch.arange(size)
                yield from (offset + i for i in order.tolist())

        return itertools.islice(passes(), self.rank, None, self.world_size)

    def _indices(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.rank])
        streams = [self._source_stream(k) for k in range(len(self.sizes))]
        while True:
            for source in rng.choice(
                    len(self.probs), size=self._CHUNK, p=self.probs):
                yield next(streams[source])

    def __iter__(self) -> Iterator[int]:
        # one stream for the sampler's life: a new `iter()` continues it
        # (`yield from` would close the stream with a discarded iterator)
        while True:
            yield next(self._iterator)

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Not used: the sampler is infinite (iteration-based loops)."""
