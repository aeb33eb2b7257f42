"""Official GLaMM checkpoint -> mmgrounding, and LoRA merge/export.

A fake "release" is synthesised from a tiny GLaMM by the inverse mapping
(official key names, segment-anything SAM layout, LoRA merged, 7 added token
rows, no CLIP, plus ``rotary_emb.inv_freq`` buffers and one unknown key),
written as two ``pytorch_model-*.bin`` shards with an index, converted with
the tool and loaded into a fresh tiny GLaMM, which must then compute exactly
what the original computes.
"""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmgrounding.models.grounding_heads.sam_grounding_head import build_sam
from mmgrounding.models.lmms.glamm_checkpoint_mapping import (
    GLAMM_RULES, append_vocab_rows, check_keys, convert_official_glamm,
    glamm_to_official, official_key_to_ours, ours_key_to_official,
    sam_hf_to_official, sam_official_to_hf)
from mmgrounding.registry import MODELS
from mmgrounding.testing import (GLAMM_LORA, build_tiny_tokenizer, glamm_7b_cfg,
                                 load_script, make_glamm_batch,
                                 tiny_glamm_cfg, tiny_sam_cfg)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
UNKNOWN_KEY = 'model.some_new_module.weight'
PROMPTS = ['please segment the red circle .', 'describe <bbox> in detail .']
ANSWERS = ['sure , it is [SEG] .', '<p> a circle </p> [SEG] left of it .']
BOXES = [torch.zeros(0, 4), torch.tensor([[4., 4., 40., 30.]])]


def load_tool(name):
    return load_script(f'tools/model_converters/{name}.py')


def glamm_cfg(tok_dir, **kwargs):
    """Tiny GLaMM shaped like the 7B config (no BN before the seg MLP)."""
    kwargs.setdefault('lora', GLAMM_LORA)
    return tiny_glamm_cfg(tok_dir, seg_norm=None, **kwargs)


def build(tok_dir, seed, **kwargs):
    torch.manual_seed(seed)
    return MODELS.build(glamm_cfg(tok_dir, **kwargs)).eval()


def batch(model):
    return make_glamm_batch(
        model, PROMPTS, ANSWERS, ori_sizes=[(48, 64), (80, 40)],
        region_boxes=BOXES)


def outputs(model):
    inputs, samples = batch(model)
    with torch.no_grad():
        losses = model.loss(inputs, samples)
        logits = model(inputs, samples, mode='tensor')
    return losses, logits


@pytest.fixture(scope='module')
def tok_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('tok'))
    # special tokens added by the model, in the official order, <image> last
    build_tiny_tokenizer(path, include_model_tokens=False)
    return path


@pytest.fixture(scope='module')
def reference(tok_dir):
    """The model the fake release is made of (LoRA B = 0, so the merged
    release weights are its base weights)."""
    model = build(tok_dir, seed=0)
    lm = model.language_model.model
    with torch.no_grad():
        for module in (lm.get_input_embeddings(), lm.get_output_embeddings()):
            w = module.weight
            # the row the converter appends: mean of the release's rows
            w[-1] = w[:-1].float().mean(0).to(w.dtype)
    return model


@pytest.fixture(scope='module')
def release(tmp_path_factory, reference, tok_dir):
    """A fake official checkpoint dir (2 shards + index) and a CLIP dir."""
    root = tmp_path_factory.mktemp('release')
    src = root / 'GLaMM-tiny'
    src.mkdir()
    official = glamm_to_official(reference.state_dict())
    num_layers = reference.language_model.model.config.num_hidden_layers
    inv_freq = [
        f'model.layers.{i}.self_attn.rotary_emb.inv_freq'
        for i in range(num_layers)
    ]
    for key in inv_freq:
        official[key] = torch.arange(16.)
    official[UNKNOWN_KEY] = torch.ones(3)
    keys = list(official)
    shards = [keys[:len(keys) // 2], keys[len(keys) // 2:]]
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f'pytorch_model-0000{i}-of-00002.bin'
        torch.save({k: official[k].clone() for k in shard}, src / name)
        weight_map.update({k: name for k in shard})
    with open(src / 'pytorch_model.bin.index.json', 'w') as f:
        json.dump(dict(metadata={}, weight_map=weight_map), f)
    clip_dir = str(root / 'clip')
    reference.vision_encoder.model.save_pretrained(clip_dir)
    cfg_path = str(root / 'tiny_glamm.py')
    Config(dict(model=glamm_cfg(tok_dir))).dump(cfg_path)
    return dict(
        src=str(src),
        official=official,
        inv_freq=inv_freq,
        clip_dir=clip_dir,
        config=cfg_path,
        root=root)


# --------------------------------------------------------------- SAM rules
def test_sam_key_mapping_facts():
    """segment-anything <-> transformers SamModel names (convert_sam_to_hf
    facts): ViT, neck, prompt encoder, decoder, hypernetwork MLPs."""
    cases = {
        'image_encoder.pos_embed': 'vision_encoder.pos_embed',
        'image_encoder.patch_embed.proj.weight':
        'vision_encoder.patch_embed.projection.weight',
        'image_encoder.blocks.31.norm2.bias':
        'vision_encoder.layers.31.layer_norm2.bias',
        'image_encoder.blocks.7.attn.qkv.weight':
        'vision_encoder.layers.7.attn.qkv.weight',
        'image_encoder.blocks.7.attn.rel_pos_h':
        'vision_encoder.layers.7.attn.rel_pos_h',
        'image_encoder.blocks.0.mlp.lin2.weight':
        'vision_encoder.layers.0.mlp.lin2.weight',
        'image_encoder.neck.3.weight':
        'vision_encoder.neck.layer_norm2.weight',
        'prompt_encoder.point_embeddings.2.weight':
        'prompt_encoder.point_embed.2.weight',
        'prompt_encoder.mask_downscaling.6.bias':
        'prompt_encoder.mask_embed.conv3.bias',
        'mask_decoder.transformer.layers.1.norm4.weight':
        'mask_decoder.transformer.layers.1.layer_norm4.weight',
        'mask_decoder.transformer.norm_final_attn.bias':
        'mask_decoder.transformer.layer_norm_final_attn.bias',
        'mask_decoder.output_upscaling.1.weight':
        'mask_decoder.upscale_layer_norm.weight',
        'mask_decoder.output_hypernetworks_mlps.3.layers.0.weight':
        'mask_decoder.output_hypernetworks_mlps.3.proj_in.weight',
        'mask_decoder.output_hypernetworks_mlps.3.layers.1.weight':
        'mask_decoder.output_hypernetworks_mlps.3.layers.0.weight',
        'mask_decoder.iou_prediction_head.layers.2.bias':
        'mask_decoder.iou_prediction_head.proj_out.bias',
    }
    for official, ours in cases.items():
        assert sam_official_to_hf(official) == (ours, ), official
        assert sam_hf_to_official(ours) == official, ours
    pe = sam_official_to_hf(
        'prompt_encoder.pe_layer.positional_encoding_gaussian_matrix')
    assert set(pe) == {
        'shared_image_embedding.positional_embedding',
        'prompt_encoder.shared_embedding.positional_embedding'
    }
    assert sam_official_to_hf('image_encoder.unknown.weight') is None
    # every key of a transformers SamModel has an official counterpart
    sam = build_sam(config=tiny_sam_cfg())
    for key in sam.state_dict():
        official = sam_hf_to_official(key)
        assert official is not None, key
        if official:
            assert key in sam_official_to_hf(official), key


def test_lm_and_glamm_key_mapping():
    lora = ('q_proj', 'v_proj')
    lm = 'language_model.model.base_model.model.'
    assert official_key_to_ours('model.layers.3.self_attn.q_proj.weight',
                                lora) == (
                                    lm + 'model.layers.3.self_attn.q_proj.'
                                    'base_layer.weight', )
    assert official_key_to_ours('model.layers.3.self_attn.k_proj.weight',
                                lora) == (
                                    lm + 'model.layers.3.self_attn.k_proj.'
                                    'weight', )
    assert official_key_to_ours('lm_head.weight', None) == (
        'language_model.model.lm_head.weight', )
    assert official_key_to_ours(
        'model.layers.0.self_attn.rotary_emb.inv_freq') == ()
    assert official_key_to_ours('model.text_hidden_fcs.0.2.bias') == (
        'seg_projector.layers.2.bias', )
    assert official_key_to_ours('model.mm_projector.0.weight') == (
        'projector.layers.0.weight', )
    assert official_key_to_ours(
        'model.region_encoder.roi_align.pos_embedd.5.weight') == (
            'region_encoder.roi_align.pos_embedd.5.weight', )
    assert official_key_to_ours(UNKNOWN_KEY) is None
    assert ours_key_to_official(
        lm + 'model.layers.0.self_attn.v_proj.lora_B.default.weight') == ''
    assert ours_key_to_official(lm + 'model.layers.0.self_attn.v_proj.'
                                'base_layer.weight') == (
                                    'model.layers.0.self_attn.v_proj.weight')
    assert len(GLAMM_RULES) == 4


def test_append_vocab_rows():
    w = torch.randn(5, 3, dtype=torch.bfloat16)
    out = append_vocab_rows(w, 2)
    assert out.shape == (7, 3) and out.dtype == torch.bfloat16
    assert torch.equal(out[:5], w)
    mean = w.float().mean(0).to(torch.bfloat16)
    assert torch.equal(out[5], mean) and torch.equal(out[6], mean)
    assert append_vocab_rows(w, 0) is w
    with pytest.raises(ValueError, match='num_rows'):
        append_vocab_rows(w, -1)


# -------------------------------------------------------- tiny end to end
def test_convert_release_loads_into_glamm(release, reference, tok_dir,
                                          tmp_path, capsys):
    tool = load_tool('glamm_to_mmgrounding')
    dst = str(tmp_path / 'converted.pth')
    status = tool.main([
        release['src'], dst, '--clip-dir', release['clip_dir'],
        '--check-config', release['config']
    ])
    out = capsys.readouterr().out
    assert status == 0, out
    assert f'unknown source key (not converted): {UNKNOWN_KEY}' in out
    assert 'total' in out and 'missing by design' in out

    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    meta, state = ckpt['meta'], ckpt['state_dict']
    assert meta['unknown_keys'] == [UNKNOWN_KEY]
    assert sorted(meta['ignored_keys']) == sorted(release['inv_freq'])
    assert meta['lora_target_modules'] == ['q_proj', 'v_proj']
    assert not any('inv_freq' in k for k in state)

    # every official tensor lands unchanged under its mapped name(s)
    official = release['official']
    num_mapped = 0
    for key, value in official.items():
        targets = official_key_to_ours(key, ('q_proj', 'v_proj'))
        if not targets:
            continue
        for target in targets:
            got = state[target]
            if key in ('model.embed_tokens.weight', 'lm_head.weight'):
                assert got.shape[0] == value.shape[0] + 1
                assert torch.equal(got[-1], value.float().mean(0))
                got = got[:-1]
            assert torch.equal(got, value), key
            num_mapped += 1
    assert num_mapped == len(state) - len(
        [k for k in state if k.startswith('vision_encoder.')])

    fresh = build(tok_dir, seed=1)
    before = outputs(fresh)[1]
    load_checkpoint(fresh, dst, map_location='cpu', strict=False)
    ref_state = reference.state_dict()
    for key, value in fresh.state_dict().items():
        if '.lora_A.' in key:
            continue  # the fresh adapters' own init; lora_B = 0 in both
        if key.endswith('shared_embedding.positional_embedding'):
            # SAM has one Fourier matrix; transformers keeps two copies
            value_ref = ref_state[
                'grounding_head.sam.shared_image_embedding.'
                'positional_embedding']
        else:
            value_ref = ref_state[key]
        assert torch.equal(value, value_ref), key
    assert all(
        torch.count_nonzero(v) == 0 for k, v in fresh.state_dict().items()
        if '.lora_B.' in k)

    ref_losses, ref_logits = outputs(reference)
    losses, logits = outputs(fresh)
    assert not torch.equal(before, ref_logits)
    assert torch.equal(logits, ref_logits)
    for name, value in ref_losses.items():
        assert torch.equal(losses[name], value), name


def test_no_lora_layout_and_mismatch_detection(release, tok_dir):
    plain = build(tok_dir, seed=0, lora=None)
    official = {
        k: v
        for k, v in release['official'].items() if k != UNKNOWN_KEY
    }
    converted, report = convert_official_glamm(
        official, lora_target_modules=None)
    assert report.unknown == [] and len(report.ignored) == 2
    check = check_keys(converted, plain.state_dict())
    assert check.ok
    assert all(k.startswith('vision_encoder.') for k in check.missing)
    # the default (LoRA) names do not fit a model without LoRA
    lora_names, _ = convert_official_glamm(official)
    check = check_keys(lora_names, plain.state_dict())
    assert not check.ok
    assert any('base_layer' in k for k in check.unexpected)
    # a vocabulary that does not fit is a shape mismatch
    short, _ = convert_official_glamm(
        official, lora_target_modules=None, extra_vocab_rows=0)
    check = check_keys(short, plain.state_dict())
    assert set(check.shape_mismatch) == {
        'language_model.model.model.embed_tokens.weight',
        'language_model.model.lm_head.weight'
    }


def test_strict_and_dtype(release, tmp_path, capsys):
    tool = load_tool('glamm_to_mmgrounding')
    dst = tmp_path / 'strict.pth'
    assert tool.main([release['src'], str(dst), '--strict']) == 1
    assert not dst.exists()
    # a single weight file works too, and --dtype casts floating tensors
    single = tmp_path / 'pytorch_model.bin'
    torch.save(
        {
            k: v
            for k, v in release['official'].items() if k != UNKNOWN_KEY
        }, single)
    dst = tmp_path / 'bf16.pth'
    assert tool.main([
        str(single),
        str(dst), '--dtype', 'bfloat16', '--strict', '--no-lora'
    ]) == 0
    state = torch.load(dst, weights_only=True)['state_dict']
    assert all(v.dtype == torch.bfloat16 for v in state.values())
    assert 'language_model.model.model.layers.0.self_attn.q_proj.weight' \
        in state
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='holds none'):
        tool.main([str(empty), str(dst)])
    capsys.readouterr()


# ------------------------------------------------------------ 7B on meta
def test_glamm_7b_official_layout_on_meta(tmp_path):
    """Our 7B graph, inverted, has exactly the release's predicted keys
    (official_releases.md §1.2: 936 tensors = LLM 291, mm_projector 4,
    region encoder 43, SAM 594, text_hidden_fcs 4; vocab 32007), and the
    converted release fits the model: only LoRA and CLIP keys missing."""
    build_tiny_tokenizer(
        str(tmp_path), include_model_tokens=False, vocab_size=32000)
    with torch.device('meta'):
        model = MODELS.build(glamm_7b_cfg(str(tmp_path)))
    state = model.state_dict()
    official = glamm_to_official(state)
    groups = {}
    for key in official:
        if key.startswith('model.grounding_encoder.'):
            group = 'sam'
        elif key.startswith(('model.mm_projector', 'model.region_encoder',
                             'model.text_hidden_fcs')):
            group = key.split('.')[1]
        else:
            group = 'llm'
        groups[group] = groups.get(group, 0) + 1
    assert groups == dict(
        llm=291, mm_projector=4, region_encoder=43, sam=594,
        text_hidden_fcs=4)
    assert official['model.embed_tokens.weight'].shape == (32007, 4096)
    assert official['lm_head.weight'].shape == (32007, 4096)
    sam = 'model.grounding_encoder.'
    assert official[sam + 'image_encoder.blocks.31.attn.qkv.weight'].shape \
        == (3840, 1280)
    assert official[sam + 'image_encoder.blocks.7.attn.rel_pos_h'].shape == (
        127, 80)
    assert official[sam + 'image_encoder.pos_embed'].shape == (1, 64, 64,
                                                                1280)
    # shapes of the segment-anything / GLaMM modules pin the renaming of
    # numbered Sequentials independently of the inverse mapping
    shapes = {
        'image_encoder.neck.0.weight': (256, 1280, 1, 1),
        'image_encoder.neck.2.weight': (256, 256, 3, 3),
        'prompt_encoder.mask_downscaling.0.weight': (4, 1, 2, 2),
        'prompt_encoder.mask_downscaling.3.weight': (16, 4, 2, 2),
        'prompt_encoder.mask_downscaling.6.weight': (256, 16, 1, 1),
        'prompt_encoder.pe_layer.positional_encoding_gaussian_matrix':
        (2, 128),
        'mask_decoder.output_upscaling.0.weight': (256, 64, 2, 2),
        'mask_decoder.output_upscaling.3.weight': (64, 32, 2, 2),
        'mask_decoder.output_hypernetworks_mlps.0.layers.2.weight':
        (32, 256),
        'mask_decoder.iou_prediction_head.layers.2.weight': (4, 256),
    }
    for key, shape in shapes.items():
        assert official[sam + key].shape == shape, key
    region = 'model.region_encoder.'
    shapes = {
        'mlvl_fuse.input_conv.3.weight': (1024, 1026, 1, 1),
        'mlvl_fuse.fuse_convs.4.conv.weight': (1024, 1024, 3, 3),
        'mlvl_fuse.fuse_convs.4.gn.bias': (1024, ),
        'roi_align.pconvs.3.weight': (1024, 1024, 3, 3),
        'roi_align.pos_embedd.0.weight': (256, 4),
        'roi_align.pos_embedd.2.weight': (256, ),
        'roi_align.pos_embedd.3.weight': (1024, 256),
        'roi_align.pos_embedd.5.weight': (1024, ),
        'roi_align.updims.weight': (4096, 1024),
        'roi_align.flatten_linear.weight': (1024, 1024 * 14 * 14),
    }
    for key, shape in shapes.items():
        assert official[region + key].shape == shape, key
    assert region + 'mlvl_fuse.fuse_convs.0.conv.bias' not in official
    assert official['model.mm_projector.0.weight'].shape == (4096, 1024)
    assert official['model.text_hidden_fcs.0.2.weight'].shape == (256, 4096)
    converted, report = convert_official_glamm(official)
    assert not report.unknown
    check = check_keys(converted, state)
    assert check.ok, check.shape_mismatch or check.unexpected
    assert {k.split('.')[0]
            for k in check.missing} == {'vision_encoder', 'language_model'}
    assert all(
        '.lora_' in k for k in check.missing
        if k.startswith('language_model'))


# ------------------------------------------------------------ LoRA merge
def test_merge_lora_export_round_trip(tok_dir, tmp_path):
    model = build(tok_dir, seed=2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if '.lora_B.' in name:
                param.normal_(0, 0.05)
    ckpt = str(tmp_path / 'lora.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    cfg_path = str(tmp_path / 'cfg.py')
    Config(dict(model=glamm_cfg(tok_dir))).dump(cfg_path)
    out_dir = tmp_path / 'export'
    assert load_tool('merge_lora').main([cfg_path, ckpt, str(out_dir)]) == 0

    from transformers import AutoModelForCausalLM, AutoTokenizer
    lm_dir = str(out_dir / 'language_model')
    merged = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    tok = AutoTokenizer.from_pretrained(lm_dir)
    for name, idx in model.language_model.token_ids.items():
        assert tok.convert_tokens_to_ids(name) == idx
    assert not any('lora' in k for k in merged.state_dict())
    ids = torch.randint(0, len(tok), (2, 12), generator=torch.Generator()
                        .manual_seed(0))
    with torch.no_grad():
        want = model.language_model(model.language_model.embed(ids)).logits
        got = merged(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5)

    weights = torch.load(
        out_dir / 'glamm_weights.pth', weights_only=True)['state_dict']
    assert not any(k.startswith('language_model.') for k in weights)
    assert any(k.startswith('vision_encoder.') for k in weights)
    # the export rebuilds the same GLaMM: HF LM dir + the other weights
    cfg = glamm_cfg(tok_dir, lora=None)
    cfg['language_model'].pop('config')
    cfg['language_model'].update(
        pretrained_model_name_or_path=lm_dir,
        tokenizer=dict(pretrained_model_name_or_path=lm_dir))
    rebuilt = MODELS.build(cfg).eval()
    load_checkpoint(
        rebuilt, str(out_dir / 'glamm_weights.pth'), strict=False)
    ref_losses, ref_logits = outputs(model)
    losses, logits = outputs(rebuilt)
    assert torch.allclose(logits, ref_logits, atol=1e-5)
    for name, value in ref_losses.items():
        assert torch.allclose(losses[name], value, atol=1e-5), name
