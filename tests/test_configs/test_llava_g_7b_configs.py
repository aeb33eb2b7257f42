"""The LLaVA-G-7B stage configs build their full graph (meta parameters).

Pretrained paths are swapped for the architecture configs of the same
models (CLIP ViT-L/14-224, Vicuna-7B) and a 32000-token tokenizer; the graph
is then built as the config describes it: special-token ids, the recipe's
trainable set per stage, lr, sampler and the grounding model's size.
"""
from pathlib import Path

import pytest
from mmengine.config import Config

from mmgrounding.registry import MODELS
from mmgrounding.testing import VICUNA_7B, build_tiny_tokenizer
from mmgrounding.testing.llava_g import CLIP_L_224

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {
    p.name.split('_')[4].split('-')[0]: p
    for p in (ROOT / 'configs' / 'llava_grounding').glob(
        'llava-g_vicuna7b_*.py')
}


@pytest.fixture(scope='module')
def vicuna_tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp('vicuna_tok')
    build_tiny_tokenizer(
        str(path), include_model_tokens=False, vocab_size=32000)
    return str(path)


def _count(module, trainable=False):
    return sum(p.numel() for p in module.parameters()
               if p.requires_grad or not trainable)


def _build(cfg, tokenizer_dir):
    from accelerate import init_empty_weights
    model_cfg = cfg.model.to_dict()
    model_cfg['vision_encoder'].pop('pretrained_model_name_or_path')
    model_cfg['vision_encoder']['config'] = dict(CLIP_L_224)
    lm = model_cfg['language_model']
    lm.pop('pretrained_model_name_or_path')
    lm['config'] = dict(VICUNA_7B)
    lm['tokenizer'] = dict(pretrained_model_name_or_path=tokenizer_dir)
    lm['torch_dtype'] = None
    lm['gradient_checkpointing'] = False
    # parameters on meta; mmdet's Swin reads linspace(...).item() at build
    with init_empty_weights():
        return MODELS.build(model_cfg)


def test_the_three_training_stages_have_configs():
    assert set(CONFIGS) >= {'30k', '10k', '20k'}, CONFIGS


@pytest.mark.parametrize('stage', ['30k', '10k', '20k'])
def test_stage_config_builds(stage, vicuna_tokenizer):
    cfg = Config.fromfile(str(CONFIGS[stage]))
    model = _build(cfg, vicuna_tokenizer)
    ids = model.language_model.token_ids
    # official ids of the released vocabulary
    assert [ids[t] for t in ('<g_s>', '<g_e>', '<seg>')] == [
        32000, 32001, 32002
    ]
    assert model.train_seg_hidden_source == 'self'
    assert model.test_seg_hidden_source == 'preceding'
    assert model.vision_encoder.num_patches == 256  # (224 / 14) ** 2
    assert _count(model.projector) == 1024 * 4096 + 4096
    # the Swin-T grounding model (design note §7: 53.54 M + 23,322 relative
    # position entries, without the dead lang_mapper) trains in both stages
    head = model.grounding_head
    assert abs(_count(head) - 53_563_322) < 10_000, _count(head)
    assert _count(model.vision_encoder, True) == 0
    lm = model.language_model
    embed_and_head = 2 * 32005 * 4096
    if stage == '20k':  # stage 3: only the visual-prompt encoder trains
        enc = model.prompt_encoder
        # design note §7: 54.03 M incl. obj_projector (1.05 M) minus the
        # three dead official tensors not built (0.39 M)
        assert abs(_count(enc) - 53.64e6) < 0.02e6, _count(enc)
        assert _count(model, True) == _count(enc, True) == _count(enc)
        assert model.grounding_loss is False
        assert cfg.train_dataloader.batch_size * 8 == 16
        assert cfg.train_cfg.max_iters == 20000
        return
    assert _count(head, True) == _count(head)
    if stage == '30k':  # stage 1: LLM frozen but for the token rows
        assert _count(lm, True) == embed_and_head
        assert cfg.optim_wrapper.optimizer.lr == 1e-4
        assert cfg.train_cfg.max_iters == 30000
        assert cfg.train_dataloader.batch_size * 4 == 32  # 4 GPUs
    else:  # stage 2: LLM fully trained, grounding losses x 0.1
        assert _count(lm, True) == _count(lm)
        assert cfg.optim_wrapper.optimizer.lr == 2e-5
        assert cfg.train_cfg.max_iters == 10000
        assert cfg.train_dataloader.batch_size * 8 == 64  # 8 GPUs
        assert head.criterion.loss_weight_multiplier == 0.1
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    for key in ('grounding_head.backbone', 'sampling_offsets',
                'reference_points'):
        assert keys[key]['lr_mult'] == 0.1
