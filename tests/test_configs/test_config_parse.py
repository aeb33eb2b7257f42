"""Every file under configs/ parses; leaf configs use the mmgrounding scope."""
from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (ROOT / 'configs').rglob('*.py'))
LEAF_CONFIGS = [p for p in CONFIGS if '_base_' not in p.parts]


def test_configs_exist():
    assert LEAF_CONFIGS, 'no configs found under configs/'


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_parses(path):
    cfg = Config.fromfile(str(path))
    assert isinstance(cfg.to_dict(), dict)


@pytest.mark.parametrize(
    'path', LEAF_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_leaf_config_is_complete(path):
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmgrounding'
    assert 'mmgrounding' in cfg.custom_imports['imports']
    for key in ('model', 'train_dataloader', 'test_dataloader',
                'test_evaluator', 'optim_wrapper', 'train_cfg'):
        assert key in cfg, f'{path.name} lacks {key}'
