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


# ------------------------------------------------- drop_unused_layers (DDP)
def _module(enc, suffix):
    """The submodule of the HF tower whose name ends with ``suffix``."""
    found = [m for n, m in enc.model.named_modules() if n.endswith(suffix)]
    assert len(found) == 1, suffix
    return found[0]


def _three_layer_clip():
    return dict(TINY_CLIP, num_hidden_layers=3)


def test_drop_unused_layers_keeps_features_and_every_param_trains():
    """select_layers (-3, -2) of 3 layers read hidden states 1 and 2: the
    third layer and the pooling LayerNorm never reach the output."""
    torch.manual_seed(0)
    full = HFVisionEncoder(
        config=_three_layer_clip(), select_layers=(-3, -2), trainable=True)
    torch.manual_seed(0)
    cut = HFVisionEncoder(
        config=_three_layer_clip(),
        select_layers=(-3, -2),
        trainable=True,
        drop_unused_layers=True)
    layers = _module(cut, 'encoder.layers')
    assert len(layers) == 2 and cut.model.config.num_hidden_layers == 2
    assert isinstance(_module(cut, 'post_layernorm'), torch.nn.Identity)
    # same init (dropping happens after the build), same features
    for name, value in cut.state_dict().items():
        assert torch.equal(value, full.state_dict()[name]), name
    pixels = torch.randn(2, 3, 32, 32)
    for a, b in zip(cut(pixels), full(pixels)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    def no_grad(enc):
        sum(f.sum() for f in enc(pixels)).backward()
        return [n for n, p in enc.named_parameters() if p.grad is None]

    assert no_grad(cut) == []
    unused = no_grad(full)  # the defect: DDP without find_unused errors
    assert any('layers.2.' in n for n in unused)
    assert any('post_layernorm' in n for n in unused)


def test_drop_unused_layers_with_the_last_layer_selected():
    torch.manual_seed(0)
    enc = HFVisionEncoder(
        config=TINY_CLIP, select_layers=(0, -1), trainable=True,
        drop_unused_layers=True)
    assert len(_module(enc, 'encoder.layers')) == 2
    feats = enc(torch.randn(1, 3, 32, 32))
    sum(f.sum() for f in feats).backward()
    assert all(p.grad is not None for p in enc.parameters())


def _demo_model_cfg(tokenizer_dir, **vision):
    from mmengine.config import Config

    from mmgrounding.testing.scripts import REPO_ROOT
    cfg = Config.fromfile(
        os.path.join(
            REPO_ROOT, 'configs/glamm/'
            'glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py'))
    model = cfg.model.to_dict()
    model['language_model']['tokenizer'][
        'pretrained_model_name_or_path'] = tokenizer_dir
    model['vision_encoder'].update(vision)
    return model


def _demo_batch(model):
    from mmgrounding.testing import make_glamm_batch
    return make_glamm_batch(
        model, ['What is at <bbox>?', 'Describe the image.'],
        ['<p> it </p> [SEG].', '<p> a red circle </p> [SEG] and a square.'],
        region_boxes=[torch.tensor([[8., 8., 60., 60.]]), torch.zeros(0, 4)])


def test_demo_model_every_trainable_parameter_gets_a_gradient(tmp_path):
    """The tiny demo config is DDP-safe without find_unused_parameters."""
    from mmgrounding.testing import build_tiny_tokenizer
    tok = str(tmp_path / 'tok')
    build_tiny_tokenizer(tok)
    torch.manual_seed(0)
    model = MODELS.build(_demo_model_cfg(tok))
    model.train()
    losses = model.loss(*_demo_batch(model))
    assert set(losses) == {'loss_lm', 'loss_mask', 'loss_dice'}
    sum(losses.values()).backward()
    no_grad = [
        n for n, p in model.named_parameters()
        if p.requires_grad and p.grad is None
    ]
    assert no_grad == []
    assert any(p.requires_grad
               for p in model.vision_encoder.parameters())  # CLIP trains


def test_demo_numbers_do_not_move_with_dropped_layers(tmp_path):
    """Same init, same losses step after step with and without the unused
    CLIP layer (AdamW and grad clipping ignore parameters without grad)."""
    from mmengine.optim import OptimWrapper

    from mmgrounding.testing import build_tiny_tokenizer
    tok = str(tmp_path / 'tok')
    build_tiny_tokenizer(tok)
    curves = []
    for drop in (False, True):
        torch.manual_seed(0)
        model = MODELS.build(_demo_model_cfg(tok, drop_unused_layers=drop))
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        wrapper = OptimWrapper(
            torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95),
                              weight_decay=0.),
            clip_grad=dict(max_norm=1.0))
        batch = _demo_batch(model)
        curve = []
        for _ in range(3):
            losses = model.loss(*batch)
            loss = sum(losses.values())
            wrapper.update_params(loss)
            curve.append(loss.item())
        curves.append(curve)
    assert curves[0] == curves[1], curves
    assert curves[0][-1] < curves[0][0]
