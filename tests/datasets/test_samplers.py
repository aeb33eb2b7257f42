"""Source-mixing samplers: GLaMM's per-sample draw by ratio, and mmdet's
fixed-slot sampler refusing the ratios on which it would hang."""
import itertools
from collections import Counter

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from torch.utils.data import ConcatDataset

import mmgrounding.datasets  # noqa: F401  (registers the samplers)
from mmgrounding.datasets.samplers import (MultiSourceSampler,
                                           RandomSourceSampler)
from mmgrounding.datasets.samplers import random_source_sampler as rss
from mmgrounding.registry import DATA_SAMPLERS

SIZES = [5, 7, 11, 2]
RATIO = [3, 3, 3, 1]


def concat(sizes=SIZES):
    return ConcatDataset([list(range(n)) for n in sizes])


def source_of(index, sizes=SIZES):
    return int(np.searchsorted(np.cumsum(sizes), index, side='right'))


def draws(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_source_frequencies_follow_the_ratio():
    n = 20000
    picks = draws(RandomSourceSampler(concat(), RATIO, seed=3), n)
    counts = Counter(source_of(i) for i in picks)
    expected = np.array(RATIO) / sum(RATIO) * n  # 6000, 6000, 6000, 2000
    observed = np.array([counts[k] for k in range(4)])
    chi2 = float(((observed - expected)**2 / expected).sum())
    # chi-square, 3 degrees of freedom: P(chi2 > 16.27) = 0.001
    assert chi2 < 16.27, (observed, chi2)
    # and far from uniform mixing (2500 each would give chi2 ~ 1700)
    assert abs(observed[3] - 2000) < 200


def test_each_pass_over_a_source_is_a_permutation():
    sampler = RandomSourceSampler(concat(), RATIO, seed=0)
    picks = draws(sampler, 400)
    start = 0
    for k, size in enumerate(SIZES):
        of_k = [i for i in picks if source_of(i) == k]
        assert len(of_k) >= 2 * size
        for p in range(2):  # first two passes
            assert sorted(of_k[p * size:(p + 1) * size]) == list(
                range(start, start + size))
        start += size


def test_same_seed_same_stream_other_seed_other_stream():
    a = draws(RandomSourceSampler(concat(), RATIO, seed=7), 300)
    b = draws(RandomSourceSampler(concat(), RATIO, seed=7), 300)
    c = draws(RandomSourceSampler(concat(), RATIO, seed=8), 300)
    assert a == b
    assert a != c
    # a second iter() continues the stream (as mmengine InfiniteSampler)
    sampler = RandomSourceSampler(concat(), RATIO, seed=7)
    assert draws(sampler, 100) + draws(sampler, 200) == a


def test_ranks_mix_independently_and_read_disjoint_samples(monkeypatch):
    per_rank = {}
    for rank in range(2):
        monkeypatch.setattr(rss, 'get_dist_info', lambda r=rank: (r, 2))
        sampler = RandomSourceSampler(concat([10, 10]), [1, 1], seed=5)
        assert (sampler.rank, sampler.world_size) == (rank, 2)
        per_rank[rank] = draws(sampler, 400)
    sources = {r: [source_of(i, [10, 10]) for i in v]
               for r, v in per_rank.items()}
    assert sources[0] != sources[1]  # (seed, rank) draws the sources
    for k in range(2):
        first = [[i for i in per_rank[r] if source_of(i, [10, 10]) == k][:5]
                 for r in range(2)]
        # one pass of 10 split between the 2 ranks: disjoint, complete
        assert not set(first[0]) & set(first[1])
        assert sorted(first[0] + first[1]) == list(range(10 * k,
                                                          10 * k + 10))


def test_no_shuffle_reads_sources_in_order():
    picks = draws(RandomSourceSampler(concat(), RATIO, shuffle=False,
                                      seed=0), 200)
    of_2 = [i for i in picks if source_of(i) == 2]
    assert of_2[:22] == list(range(12, 23)) * 2


@pytest.mark.parametrize('sizes, ratio, match', [
    ([5, 7], [1], 'has 1 entries but the dataset has 2'),
    ([5, 7], [1, 0], r'source_ratio\[1\]=0'),
    ([5, 7], [1, -2.0], r'source_ratio\[1\]=-2.0'),
    ([5, 7], [1, float('nan')], r'source_ratio\[1\]=nan'),
    ([5, 0], [1, 1], r'source\(s\) \[1\]'),
])
def test_bad_ratios_and_empty_sources_raise(sizes, ratio, match):
    with pytest.raises(ValueError, match=match):
        RandomSourceSampler(concat(sizes), ratio, seed=0)
    with pytest.raises(ValueError, match=match):
        MultiSourceSampler(concat(sizes), 4, ratio, seed=0)


def test_not_a_concat_dataset_raises():
    with pytest.raises(TypeError, match='ConcatDataset'):
        RandomSourceSampler(list(range(5)), [1], seed=0)


def test_registered_in_the_mmgrounding_scope():
    init_default_scope('mmgrounding')
    sampler = DATA_SAMPLERS.build(
        dict(type='RandomSourceSampler', source_ratio=RATIO),
        default_args=dict(dataset=concat(), seed=11))
    assert isinstance(sampler, RandomSourceSampler) and sampler.seed == 11
    # unprefixed MultiSourceSampler is the checked one ...
    assert DATA_SAMPLERS.get('MultiSourceSampler') is MultiSourceSampler
    # ... mmdet's stays reachable by its prefix
    from mmdet.datasets.samplers import MultiSourceSampler as MMDetSampler
    assert DATA_SAMPLERS.get('mmdet.MultiSourceSampler') is MMDetSampler


def test_multi_source_sampler_refuses_a_ratio_with_empty_slots():
    # the GLaMM-GCG recipe that hung: slots [2, 0, 0, 0]
    with pytest.raises(ValueError, match=r'\[2, 0, 0, 0\].*\[1, 2, 3\]'):
        MultiSourceSampler(concat(), 2, RATIO, seed=0)
    init_default_scope('mmgrounding')
    with pytest.raises(ValueError, match='RandomSourceSampler'):
        DATA_SAMPLERS.build(
            dict(type='MultiSourceSampler', batch_size=2,
                 source_ratio=RATIO),
            default_args=dict(dataset=concat(), seed=0))


def test_multi_source_sampler_fills_batches_when_every_source_has_a_slot():
    # batch 10 with 3:3:3:1: slots 3, 3, 3, 1 (source 0 takes the rest)
    sampler = MultiSourceSampler(concat(), 10, RATIO, seed=0)
    assert sampler.num_per_source == [3, 3, 3, 1]
    picks = draws(sampler, 30)
    for b in range(3):
        assert [source_of(i) for i in picks[10 * b:10 * b + 10]] == \
            [0] * 3 + [1] * 3 + [2] * 3 + [3]
