"""The tiny LLaVA-G stage-3 config: 2 training iterations, then the
region-question test (``RegionQAAccuracyMetric``) on a small synthetic
world. Frozen parts (CLIP, mm projector, OpenSeeD head) must not move; the
visual-prompt encoder and the tiny LM (the documented deviation) must."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmgrounding.datasets.synthetic import generate_world

ROOT = Path(__file__).resolve().parents[2]
CFG = ROOT / 'configs/llava_grounding/' \
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_semsam-tiny_stage3_synthetic.py'
QUICK = [
    'train_cfg.max_iters=2', 'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'test_dataloader.num_workers=0', 'test_dataloader.batch_size=4',
    'test_dataloader.dataset.indices=8', 'default_hooks.logger.interval=1',
    'default_hooks.checkpoint.interval=2',
    'model.generation_cfg.max_new_tokens=6'
]
PARTS = ('vision_encoder', 'projector', 'grounding_head', 'prompt_encoder',
         'language_model')


class _Snapshot(Hook):

    def before_train(self, runner):
        self.before = {
            part: {n: p.detach().clone()
                   for n, p in getattr(runner.model, part).named_parameters()}
            for part in PARTS
        }


@pytest.fixture(scope='module')
def world_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny_world_stage3')
    generate_world(str(root / 'data' / 'synthetic'), num_images=24, seed=1)
    return root


def _moved(model, part, before):
    return sum(not torch.equal(p, before[n])
               for n, p in getattr(model, part).named_parameters())


@pytest.mark.slow  # build + 2 iterations + 8 questions (~25 s CPU)
def test_stage3_trains_prompt_encoder_and_lm_only(world_dir, tmp_path,
                                                  monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.chdir(world_dir)
    cfg = Config.fromfile(str(CFG))
    options = {}
    for item in QUICK:
        key, value = item.split('=', 1)
        options[key] = DictAction._parse_iterable(value)
    cfg.merge_from_dict(options)
    cfg.load_from = None  # no stage-2 checkpoint in the unit test
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert type(model.prompt_encoder).__name__ == 'SemanticSAMPromptEncoder'
    assert model.grounding_loss is False
    snap = _Snapshot()
    runner.register_hook(snap)
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert 'train/vp.loss_mask' in scalars and 'train/loss_lm' in scalars
    assert not any('loss_cls' in k for k in scalars), sorted(scalars)
    for part in ('vision_encoder', 'projector', 'grounding_head'):
        assert _moved(model, part, snap.before[part]) == 0, part
    for part in ('prompt_encoder', 'language_model'):
        assert _moved(model, part, snap.before[part]) >= \
            len(snap.before[part]) // 2, part
    assert (tmp_path / 'work' / 'iter_2.pth').exists()

    metrics = runner.test()
    for key in ('overall', 'num_unscored'):
        assert f'region_qa/{key}' in metrics, metrics
    assert 0.0 <= metrics['region_qa/overall'] <= 100.0
