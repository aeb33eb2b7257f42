"""Mixing sources: ConcatDataset + mmdet's MultiSourceSampler from a config."""
import itertools
import os.path as osp

from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmgrounding.registry import DATA_SAMPLERS, DATASETS

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
CONFIG = osp.join(DATA, 'configs', 'mixed_gcg_refcoco.py')


def test_config_mixes_two_sources_with_ratio():
    import mmgrounding.datasets  # noqa: F401
    init_default_scope('mmgrounding')
    cfg = Config.fromfile(CONFIG)
    loader = cfg.train_dataloader
    dataset = DATASETS.build(loader.dataset)
    assert dataset.cumulative_sizes == [2, 6]
    sampler = DATA_SAMPLERS.build(
        loader.sampler, default_args=dict(dataset=dataset))
    indices = list(itertools.islice(iter(sampler), 4 * 6))
    for b in range(6):
        batch = indices[4 * b:4 * b + 4]
        sources = [dataset[i]['source'] for i in batch]
        # MultiSourceSampler puts the sources in order inside a batch
        assert sources == ['gcg_grandf'] + ['refcoco'] * 3
    tasks = {dataset[i]['task'] for i in indices}
    assert tasks == {'gcg', 'refseg'}
    assert {dataset[i]['img_id'] for i in indices[:24:4]} == {
        '000000000001', '000000000002'}
