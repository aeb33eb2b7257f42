"""The paper's GLaMM-7B configs build their full graph on the meta device.

The configs load CLIP, Vicuna and SAM from local directories; with no weights
here, each pretrained path is swapped for the architecture config of the same
model (CLIP ViT-L/14-336, Vicuna-7B, SAM ViT-H) and a 32000-token tokenizer,
then the model is built on ``meta`` exactly as the config describes it
(LoRA, trainable set, projector and region-encoder sizes, SAM freezing).
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmgrounding.registry import MODELS
from mmgrounding.testing import (CLIP_L_336, SAM_VIT_H, VICUNA_7B,
                                 build_tiny_tokenizer)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / 'configs' / 'glamm').glob('glamm_vicuna7b_*.py'))

@pytest.fixture(scope='module')
def vicuna_tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp('vicuna_tok')
    build_tiny_tokenizer(str(path), include_model_tokens=False,
                         vocab_size=32000)
    return str(path)


def _count(module, trainable=False):
    return sum(p.numel() for p in module.parameters()
               if p.requires_grad or not trainable)


def test_there_are_7b_configs():
    names = {p.name for p in CONFIGS}
    assert 'glamm_vicuna7b_clipl336_sam-h_10e_grandf-gcg.py' in names
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_7b_config_builds_on_meta(path, vicuna_tokenizer):
    cfg = Config.fromfile(str(path))
    model_cfg = cfg.model.to_dict()
    # the recipe facts the config must state
    lm = model_cfg['language_model']
    assert lm['lora'] == dict(r=8, lora_alpha=16, lora_dropout=0.05,
                              target_modules=['q_proj', 'v_proj'])
    assert cfg.optim_wrapper.optimizer.lr == 3e-4
    assert cfg.optim_wrapper.optimizer.betas == (0.9, 0.95)
    assert cfg.optim_wrapper.accumulative_counts * \
        cfg.train_dataloader.batch_size * 8 == 160  # 8 GPUs, paper batch
    # swap local checkpoints for their architectures
    model_cfg['vision_encoder'].pop('pretrained_model_name_or_path')
    model_cfg['vision_encoder']['config'] = dict(CLIP_L_336)
    lm.pop('pretrained_model_name_or_path')
    lm['config'] = dict(VICUNA_7B)
    lm['tokenizer'] = dict(pretrained_model_name_or_path=vicuna_tokenizer)
    lm['torch_dtype'] = None
    lm['gradient_checkpointing'] = False
    model_cfg['grounding_head']['sam'] = dict(config=dict(SAM_VIT_H))
    with torch.device('meta'):
        model = MODELS.build(model_cfg)

    ids = model.language_model.token_ids
    assert [ids[t] for t in ('<im_start>', '<im_end>', '<bbox>', '<point>',
                             '[SEG]', '<p>', '</p>')] == list(
                                 range(32000, 32007))
    # official parameter counts (official_releases.md §1.2), CLIP aside
    lora = 32 * 2 * 8 * (4096 + 4096)
    no_clip = _count(model) - _count(model.vision_encoder) - lora - 2 * 4096
    assert abs(no_clip - 7.7175e9) < 0.5e6, no_clip
    assert abs(_count(model.vision_encoder) - 303.5e6) < 0.1e6
    # trainable set: LoRA + embed_tokens + lm_head + mask decoder + seg
    # projector + region encoder; CLIP, mm_projector, SAM encoders frozen
    assert _count(model.vision_encoder, True) == 0
    assert _count(model.projector, True) == 0
    assert _count(model.grounding_head, True) == _count(
        model.grounding_head.sam.mask_decoder)
    assert _count(model.seg_projector, True) == _count(model.seg_projector)
    assert _count(model.region_encoder, True) == _count(model.region_encoder)
    assert _count(model.language_model, True) == lora + 2 * 32008 * 4096
