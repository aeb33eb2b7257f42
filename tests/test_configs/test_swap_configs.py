"""Every part swap of ``configs/swaps/`` trains 2 iterations and predicts.

Each config is the tiny GLaMM or LLaVA-G recipe with one part replaced by
config alone (docs/architecture.md "Model contract"). One parametrised test
runs each through mmengine's ``Runner`` on a small synthetic world in a temp
dir: build, train 2 iterations, check that the swapped-in part is the one
built and that its trainable weights moved (it is in the graph, not just
built), save, then ``runner.test()`` on 2 samples with the config's own
metrics.
"""
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmgrounding.datasets.synthetic import generate_world

ROOT = Path(__file__).resolve().parents[2]
SWAPS = ROOT / 'configs' / 'swaps'
QUICK = [
    'train_cfg.max_iters=2', 'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'test_dataloader.num_workers=0', 'test_dataloader.batch_size=2',
    'test_dataloader.dataset.indices=2', 'default_hooks.logger.interval=1',
    'default_hooks.checkpoint.interval=2',
    'model.generation_cfg.max_new_tokens=8'
]

# config stem -> (model class, swapped attribute, class of that part,
#                 metric keys of the config's test)
EXPECTED = {
    'llava-g_llama-tiny_clip-tiny_sam-tiny_600it_synthetic':
    ('LLaVAGrounding', 'grounding_head', 'SAMGroundingHead',
     ('Acc@1', 'gIoU', 'cIoU')),
    'glamm_llama-tiny_clip-tiny_openseed-tiny_1000it_synthetic':
    ('GLaMM', 'grounding_head', 'OpenSeeDGroundingHead',
     ('gcg/mIoU', 'gcg/AP50', 'gcg/recall')),
    'glamm_llama-tiny_clip-tiny_sam2-tiny_1000it_synthetic':
    ('GLaMM', 'grounding_head', 'SAM2GroundingHead',
     ('gcg/mIoU', 'gcg/AP50', 'gcg/recall')),
    'llava-g_llama-tiny_clip-tiny_sam2-tiny_600it_synthetic':
    ('LLaVAGrounding', 'grounding_head', 'SAM2GroundingHead',
     ('Acc@1', 'gIoU', 'cIoU')),
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_roialign-obj_600it_'
    'synthetic-regcap':
    ('LLaVAGrounding', 'prompt_encoder', 'GLaMMRegionEncoder', ('CIDEr', )),
    'glamm_llama-tiny_clip-tiny_sam-tiny_semsam-bbox_1000it_synthetic-regcap':
    ('GLaMM', 'region_encoder', 'SemanticSAMPromptEncoder', ('CIDEr', )),
    'glamm_qwen2-tiny_clip-tiny_sam-tiny_1000it_synthetic':
    ('GLaMM', 'language_model', 'HFCausalLM', ('gcg/mIoU', 'gcg/AP50')),
    'llava-g_qwen2-tiny_clip-tiny_openseed-tiny_600it_synthetic':
    ('LLaVAGrounding', 'language_model', 'HFCausalLM', ('Acc@1', 'gIoU')),
}


def test_every_swap_config_is_covered():
    found = {p.stem for p in SWAPS.glob('*.py')}
    assert found == set(EXPECTED), found ^ set(EXPECTED)


@pytest.fixture(scope='module')
def world_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('swap_world')
    generate_world(str(root / 'data' / 'synthetic'), num_images=24, seed=1)
    return root


def _options(items):
    out = {}
    for item in items:  # parsed exactly as --cfg-options parses them
        key, value = item.split('=', 1)
        out[key] = DictAction._parse_iterable(value)
    return out


def _prompt_sources_only(cfg):
    """Train a prompt-encoder swap on its prompt data only, so that both
    iterations run the swapped encoder."""
    if 'regcap_train' in cfg:  # GLaMM <bbox>
        cfg.train_dataloader.dataset.datasets = [cfg.regcap_train]
    else:  # LLaVA-G <obj>
        cfg.train_dataloader.dataset.datasets = [
            cfg.gvc_r_llava_g, cfg.region_caption_refcocog_llava_g
        ]
        cfg.train_dataloader.sampler.source_ratio = [1, 1]


class _Snapshot(Hook):
    """Copies the swapped part's trainable tensors once the weights are
    initialised (``before_train`` runs after the Runner's init pass)."""

    def __init__(self, attr):
        self.attr, self.before = attr, {}

    def before_train(self, runner):
        part = getattr(runner.model, self.attr)
        self.before = {
            n: p.detach().clone()
            for n, p in part.named_parameters() if p.requires_grad
        }


@pytest.fixture
def plain_config_text(monkeypatch):
    """The Runner formats the whole config with yapf (several seconds per
    call on these configs) each time it logs, dumps or checkpoints it; this
    test reads none of that text, so the repr of the same dict stands in."""
    monkeypatch.setattr(
        Config, 'pretty_text',
        property(lambda self: repr(self.to_dict())))


@pytest.mark.slow  # 8 Runner runs (~45 s): keeps `make test-fast` < 5 min
@pytest.mark.parametrize('stem', sorted(EXPECTED))
def test_swap_trains_two_iterations_and_predicts(stem, world_dir, tmp_path,
                                                 monkeypatch,
                                                 plain_config_text):
    torch.set_num_threads(1)
    monkeypatch.chdir(world_dir)
    model_type, attr, part_type, metric_keys = EXPECTED[stem]
    cfg = Config.fromfile(str(SWAPS / f'{stem}.py'))
    quick = list(QUICK)
    evaluators = cfg.test_evaluator if isinstance(
        cfg.test_evaluator, list) else [cfg.test_evaluator]
    if any(e['type'] in ('GCGMetric', 'RegionCaptionMetric')
           for e in evaluators):
        key = 'test_evaluator.caption_metrics' if not isinstance(
            cfg.test_evaluator, list) else 'test_evaluator.0.caption_metrics'
        quick.append(f'{key}=[CIDEr]')  # METEOR needs Java: slow
    cfg.merge_from_dict(_options(quick))
    if attr.endswith('_encoder') and attr != 'vision_encoder':
        _prompt_sources_only(cfg)
    # no validation while training (the recipes validate after max_iters)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert type(model).__name__ == model_type
    part = getattr(model, attr)
    assert type(part).__name__ == part_type
    if 'qwen2' in stem:
        assert part.model.config.model_type == 'qwen2'
        assert part.model.config.num_key_value_heads == 2
    snapshot = _Snapshot(attr)
    runner.register_hook(snapshot)
    runner.train()
    assert runner.iter == 2
    scalars = runner.message_hub.log_scalars
    loss = scalars['train/loss'].current()
    assert math.isfinite(loss) and loss > 0, loss
    assert snapshot.before, f'{attr} has no trainable tensor'
    moved = [
        n for n, p in getattr(model, attr).named_parameters()
        if n in snapshot.before and not torch.equal(p, snapshot.before[n])
    ]
    # AdamW moves every tensor that got a non-zero gradient
    assert len(moved) >= len(snapshot.before) // 2, (
        f'only {len(moved)} of {len(snapshot.before)} {attr} tensors moved')
    assert (tmp_path / 'work' / 'iter_2.pth').exists()

    metrics = runner.test()
    for key in metric_keys:
        assert any(k.endswith(key) for k in metrics), (key, metrics)
    for key, value in metrics.items():
        if 'CIDEr' not in key:  # CIDEr x 100 may exceed 100
            assert 0.0 <= value <= 100.0, (key, value)


@pytest.mark.parametrize('stem', [s for s in sorted(EXPECTED) if 'qwen2' in s])
def test_qwen2_config_replaces_the_llama_config_whole(stem):
    cfg = Config.fromfile(str(SWAPS / f'{stem}.py'))
    part = Config.fromfile(
        str(ROOT / 'configs/_base_/models/tiny_parts/qwen2.py'))
    assert cfg.model.language_model.config == part.tiny_qwen2_config


def test_prompt_encoder_swaps_rewire_the_slot():
    """The slot of the swapped placeholder reads the new encoder's view and
    prompt field (the GLaMM seam region_view / region_prompts)."""
    glamm = Config.fromfile(str(SWAPS / (
        'glamm_llama-tiny_clip-tiny_sam-tiny_semsam-bbox_1000it_'
        'synthetic-regcap.py'))).model
    assert (glamm.region_view, glamm.region_prompts) == (
        'grounding_pixels', 'visual_prompts_grounding')
    assert 'grounding' in glamm.data_preprocessor.prompt_views
    llava = Config.fromfile(str(SWAPS / (
        'llava-g_llama-tiny_clip-tiny_openseed-tiny_roialign-obj_600it_'
        'synthetic-regcap.py'))).model
    assert (llava.prompt_view, llava.prompts_field) == (
        'clip_feats', 'region_bboxes_clip')
    # the region encoder pools as many CLIP levels as the encoder returns
    assert len(llava.vision_encoder.select_layers) == \
        llava.prompt_encoder.num_levels
