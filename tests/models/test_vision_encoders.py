"""HFVisionEncoder: layer selection, CLS handling, freezing, loading."""
import json
import os

import pytest
import torch
from transformers import (CLIPConfig, CLIPModel, CLIPVisionConfig,
                          CLIPVisionModel)

from mmgrounding.models.vision_encoders import (CLIP_MEAN, HFVisionEncoder,
                                                build_hf_config)
from mmgrounding.registry import MODELS

os.environ.setdefault('HF_HUB_OFFLINE', '1')
torch.set_num_threads(1)

TINY_CLIP = dict(
    type='CLIPVisionConfig',
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=32,
    patch_size=8)


def test_build_hf_config_types():
    assert isinstance(build_hf_config(TINY_CLIP), CLIPVisionConfig)
    cfg = build_hf_config(
        dict(type='clip_vision_model', hidden_size=32, num_attention_heads=2))
    assert isinstance(cfg, CLIPVisionConfig) and cfg.hidden_size == 32
    with pytest.raises(ValueError, match='type'):
        build_hf_config(dict(hidden_size=32))
    with pytest.raises(ValueError, match='Unknown transformers config'):
        build_hf_config(dict(type='NoSuchConfig'))


def test_patch_features_are_the_selected_hidden_states():
    torch.manual_seed(0)
    enc = MODELS.build(dict(type='HFVisionEncoder', config=TINY_CLIP))
    assert (enc.num_patches, enc.hidden_size, enc.image_size) == (16, 32, 32)
    assert enc.image_mean == CLIP_MEAN
    pixels = torch.randn(2, 3, 32, 32)
    (feat, ) = enc(pixels)
    assert feat.shape == (2, 16, 32)
    ref = enc.model(pixel_values=pixels, output_hidden_states=True)
    # -2 = penultimate entry of hidden_states (3 entries for 2 layers), CLS
    # token dropped.
    torch.testing.assert_close(feat, ref.hidden_states[1][:, 1:])


def test_multi_layer_and_cls_patch():
    torch.manual_seed(0)
    enc = HFVisionEncoder(
        config=TINY_CLIP, select_layers=(0, -2, -1), feature='cls_patch')
    feats = enc(torch.randn(1, 3, 32, 32))
    assert [f.shape for f in feats] == [(1, 17, 32)] * 3
    assert not torch.allclose(feats[1], feats[2])


def test_frozen_tower_stays_eval_and_has_no_grad():
    enc = HFVisionEncoder(config=TINY_CLIP, trainable=False)
    enc.train()
    assert not enc.model.training
    assert sum(p.numel() for p in enc.parameters() if p.requires_grad) == 0
    (feat, ) = enc(torch.randn(1, 3, 32, 32))
    assert not feat.requires_grad


def test_trainable_tower_gets_gradients():
    enc = HFVisionEncoder(config=TINY_CLIP, trainable=True)
    enc.train()
    assert enc.model.training
    total = sum(p.numel() for p in enc.parameters())
    assert sum(p.numel() for p in enc.parameters()
               if p.requires_grad) == total
    (feat, ) = enc(torch.randn(1, 3, 32, 32))
    feat.sum().backward()
    grads = {n: p.grad for n, p in enc.named_parameters()}
    assert grads['model.embeddings.patch_embedding.weight'] is not None
    # Layers after the selected one are not used (DDP users: freeze them).
    assert grads['model.post_layernorm.weight'] is None


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='out of range'):
        HFVisionEncoder(config=TINY_CLIP, select_layers=(5, ))
    with pytest.raises(ValueError, match='feature'):
        HFVisionEncoder(config=TINY_CLIP, feature='cls')
    with pytest.raises(ValueError, match='exactly one'):
        HFVisionEncoder()
    enc = HFVisionEncoder(config=TINY_CLIP)
    with pytest.raises(ValueError, match='expects pixels'):
        enc(torch.randn(1, 3, 16, 16))


def test_from_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = build_hf_config(TINY_CLIP)
    model = CLIPVisionModel(cfg).eval()
    model.save_pretrained(tmp_path / 'vision')
    with open(tmp_path / 'vision' / 'preprocessor_config.json', 'w') as f:
        json.dump(dict(image_mean=[0.5] * 3, image_std=[0.25] * 3), f)
    enc = HFVisionEncoder(pretrained_model_name_or_path=str(tmp_path /
                                                          'vision'))
    enc.init_weights()  # the Runner calls it: must keep loaded weights
    assert enc.image_mean == (0.5, ) * 3 and enc.image_std == (0.25, ) * 3
    pixels = torch.randn(1, 3, 32, 32)
    ref = model(pixel_values=pixels, output_hidden_states=True)
    torch.testing.assert_close(enc(pixels)[0], ref.hidden_states[-2][:, 1:])


def test_vision_tower_of_a_full_clip_checkpoint(tmp_path):
    torch.manual_seed(0)
    vision = {k: v for k, v in TINY_CLIP.items() if k != 'type'}
    text = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=99)
    full = CLIPModel(
        CLIPConfig(
            vision_config=vision, text_config=text,
            projection_dim=16)).eval()
    full.save_pretrained(tmp_path / 'clip')
    enc = HFVisionEncoder(pretrained_model_name_or_path=str(tmp_path /
                                                          'clip'))
    assert isinstance(enc.model, CLIPVisionModel)
    pixels = torch.randn(1, 3, 32, 32)
    ref = full.vision_model(pixel_values=pixels, output_hidden_states=True)
    torch.testing.assert_close(enc(pixels)[0], ref.hidden_states[-2][:, 1:])


def test_clip_l14_336_on_meta_device():
    """The GLaMM tower: 576 patch tokens of width 1024, 303.5M params."""
    with torch.device('meta'):
        enc = HFVisionEncoder(
            config=dict(
                type='CLIPVisionConfig',
                hidden_size=1024,
                intermediate_size=4096,
                num_hidden_layers=24,
                num_attention_heads=16,
                image_size=336,
                patch_size=14))
    assert enc.num_patches == 576 and enc.hidden_size == 1024
    d, f, n_layers, tokens = 1024, 4096, 24, 577
    embeddings = 3 * 14 * 14 * d + d + tokens * d  # conv, CLS, positions
    layer = 4 * (d * d + d) + 2 * 2 * d + (d * f + f) + (f * d + d)
    expected = embeddings + 2 * 2 * d + n_layers * layer  # + pre/post LN
    assert sum(p.numel() for p in enc.parameters()) == expected
