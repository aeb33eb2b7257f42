"""mmdet's ``MultiSourceSampler``, checked so that a hang becomes an error."""
from typing import List, Optional, Sized, Union

from mmdet.datasets.samplers import MultiSourceSampler as _MMDetMultiSource

from mmgrounding.registry import DATA_SAMPLERS
from .random_source_sampler import check_concat_sources


@DATA_SAMPLERS.register_module()
class MultiSourceSampler(_MMDetMultiSource):
    """mmdet's fixed-slots-per-batch sampler, refusing ratios it cannot fill.

    mmdet gives source ``k`` ``int(batch_size * r_k / sum(r))`` slots of
    every batch (source 0 the rest) and then fills each slot from an
    infinite stream; a source with 0 slots, or an empty source, makes
    ``__iter__`` loop forever (e.g. ``batch_size=2, source_ratio=[3, 3, 3,
    1]`` gives slots ``[2, 0, 0, 0]``). Registered under mmdet's name in the
    ``mmgrounding`` scope so that an unprefixed ``MultiSourceSampler``
    raises instead of hanging; ``mmdet.MultiSourceSampler`` is the
    unchecked original. For per-sample mixing by ratio (GLaMM) use
    :class:`RandomSourceSampler`.
    """

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 source_ratio: List[Union[int, float]],
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        check_concat_sources(dataset, source_ratio, type(self).__name__)
        super().__init__(
            dataset=dataset,
            batch_size=batch_size,
            source_ratio=list(source_ratio),
            shuffle=shuffle,
            seed=seed)
        starved = [k for k, n in enumerate(self.num_per_source) if n <= 0]
        if starved:
            raise ValueError(
                f'MultiSourceSampler: batch_size={batch_size} with '
                f'source_ratio={list(source_ratio)} gives slots per batch '
                f'{self.num_per_source}, so source(s) {starved} get none and '
                "mmdet's sampler would loop forever; raise batch_size or use "
                "type='RandomSourceSampler' (each sample's source drawn by "
                'ratio, as GLaMM mixes)')
