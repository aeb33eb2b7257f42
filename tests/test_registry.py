"""Registries: our scope reaches mmdet/mmengine; mmdet's scope reaches ours."""
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmgrounding  # noqa: F401
from mmgrounding import registry as R

# one entry each registry must reach from the mmgrounding scope
# (ours where we have one, otherwise the parent's through the chain)
EXPECTED = {
    'RUNNERS': 'Runner',
    'LOOPS': 'EpochBasedTrainLoop',
    'HOOKS': 'TrainableWeightsCheckpointHook',
    'DATASETS': 'RefCocoDataset',
    'DATA_SAMPLERS': 'MultiSourceSampler',
    'TRANSFORMS': 'LoadImageFromFile',
    'MODELS': 'CrossEntropyLoss',
    'MODEL_WRAPPERS': 'MMDistributedDataParallel',
    'WEIGHT_INITIALIZERS': 'Normal',
    'TASK_UTILS': 'HungarianAssigner',
    'OPTIMIZERS': 'AdamW',
    'OPTIM_WRAPPERS': 'OptimWrapper',
    'OPTIM_WRAPPER_CONSTRUCTORS': 'DefaultOptimWrapperConstructor',
    'PARAM_SCHEDULERS': 'LinearLR',
    'METRICS': 'RefSegMetric',
    'EVALUATOR': 'Evaluator',
    'VISUALIZERS': 'GroundingVisualizer',
    'VISBACKENDS': 'LocalVisBackend',
    'LOG_PROCESSORS': 'LogProcessor',
}


@pytest.mark.parametrize('registry_name', sorted(EXPECTED))
def test_every_registry_reaches_an_entry(registry_name):
    registry = getattr(R, registry_name)
    assert registry.scope == 'mmgrounding'
    assert registry.parent is not None and registry.parent.scope == 'mmdet'
    with DefaultScope.overwrite_default_scope('mmgrounding'):
        assert registry.get(EXPECTED[registry_name]) is not None, \
            f'{registry_name} cannot reach {EXPECTED[registry_name]}'


def test_runner_constructors_chain_to_mmengine():
    # mmengine registers no runner constructor; check the parent chain only
    chain = R.RUNNER_CONSTRUCTORS
    assert chain.parent.scope == 'mmdet'
    assert chain.parent.parent.scope == 'mmengine'


def test_our_scope_builds_mmdet_parts_prefixed_and_unprefixed():
    with DefaultScope.overwrite_default_scope('mmgrounding'):
        loss = R.MODELS.build(dict(type='mmdet.CrossEntropyLoss'))
        same = R.MODELS.build(dict(type='CrossEntropyLoss'))
        assert type(loss) is type(same)
        assert type(loss).__module__.startswith('mmdet.')
        transform = R.TRANSFORMS.build(dict(type='mmdet.PackDetInputs'))
        assert type(transform).__name__ == 'PackDetInputs'


def test_mmdet_scope_reaches_ours_with_prefix():
    from mmdet.registry import HOOKS, VISUALIZERS
    with DefaultScope.overwrite_default_scope('mmdet'):
        hook = HOOKS.build(dict(type='mmgrounding.TrainableWeightsCheckpointHook'))
        assert type(hook).__module__.startswith('mmgrounding.')
        vis_cls = VISUALIZERS.get('mmgrounding.GroundingVisualizer')
        assert vis_cls.__name__ == 'GroundingVisualizer'
        with pytest.raises(KeyError):
            HOOKS.build(dict(type='mmgrounding.NoSuchHook'))


def test_mmdet_style_config_with_custom_imports(tmp_path):
    cfg_file = tmp_path / 'mmdet_cfg.py'
    cfg_file.write_text(
        "default_scope = 'mmdet'\n"
        "custom_imports = dict(imports=['mmgrounding'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='mmgrounding."
        "TrainableWeightsCheckpointHook')]\n")
    cfg = Config.fromfile(str(cfg_file))
    from mmdet.registry import HOOKS
    with DefaultScope.overwrite_default_scope('mmdet'):
        hook = HOOKS.build(cfg.custom_hooks[0])
    assert type(hook).__name__ == 'TrainableWeightsCheckpointHook'


def test_unknown_type_in_our_scope_raises():
    with DefaultScope.overwrite_default_scope('mmgrounding'):
        with pytest.raises(KeyError):
            R.MODELS.build(dict(type='NoSuchModelAnywhere'))


@pytest.mark.parametrize('registry_name', sorted(EXPECTED))
def test_locations_point_where_the_members_live(registry_name):
    """A build in scope imports ``locations`` lazily: every member we
    register must live under one of them (TASK_UTILS used to name
    mmgrounding.models while its members are evaluation helpers)."""
    registry = getattr(R, registry_name)
    registry.import_from_location()
    for name, obj in registry.module_dict.items():
        module = getattr(obj, '__module__', '')
        if not module.startswith('mmgrounding.'):
            continue  # registered by a test
        assert any(module == loc or module.startswith(loc + '.')
                   for loc in registry._locations), (registry_name, name,
                                                     module)
