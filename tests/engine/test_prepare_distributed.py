"""``prepare_distributed``: what tools/train.py changes for CPU ranks.

The process-group creation is replaced by a recorder here; the 2-process
tests in tests/test_distributed run it for real.
"""
import pytest
import torch
from mmengine.config import Config

import mmgrounding.engine.distributed as distributed
from mmgrounding.engine.distributed import prepare_distributed


@pytest.fixture
def calls(monkeypatch):
    made = []
    monkeypatch.setattr(distributed, 'init_cpu_process_group',
                        lambda timeout_s=1800.: made.append(timeout_s))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    return made


def test_no_launcher_changes_nothing(calls):
    cfg = Config(dict(launcher='none', env_cfg=dict(
        dist_cfg=dict(backend='nccl'))))
    prepare_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg and calls == []


def test_cpu_ranks_get_gloo_and_ddp_without_device_ids(calls):
    cfg = Config(dict(launcher='pytorch', find_unused_parameters=True,
                      env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    prepare_distributed(cfg)
    assert calls == [1800]
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', device_ids=None,
        broadcast_buffers=False, find_unused_parameters=True)


def test_existing_wrapper_and_flexible_ddp_strategy(calls):
    cfg = Config(dict(launcher='pytorch', model_wrapper_cfg=dict(
        type='MMDistributedDataParallel', device_ids=[0])))
    prepare_distributed(cfg)
    assert cfg.model_wrapper_cfg.device_ids is None
    flex = Config(dict(launcher='pytorch', runner_type='FlexibleRunner',
                       strategy=dict(type='DDPStrategy')))
    prepare_distributed(flex)
    assert flex.strategy.model_wrapper.device_ids is None
    assert 'model_wrapper_cfg' not in flex


def test_gpu_machine_is_left_alone(calls, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = Config(dict(launcher='pytorch'))
    prepare_distributed(cfg)
    assert calls == [] and 'model_wrapper_cfg' not in cfg


def test_other_launchers_are_refused_on_cpu(calls):
    with pytest.raises(NotImplementedError, match='slurm'):
        prepare_distributed(Config(dict(launcher='slurm')))
