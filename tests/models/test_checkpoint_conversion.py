"""Official GLaMM checkpoint -> mmgrounding, and LoRA merge/export.

The release's keys and shapes are written out independently of the mapping
under test (``official_glamm_shapes``, from official_releases.md §1.2: 936
tensors, 7.7175 B parameters at GLaMM-7B size); a tiny fake release built
from that table is converted with the tool and must give exactly our GLaMM's
keys. A second fake release made by our exporter (``glamm_to_official``, the
inverse mapping) checks the round trip: loaded into a fresh tiny GLaMM, it
computes exactly what the original computes.
"""
import json
import math
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


# ------------------------------------------- the release's keys, by hand
# official_releases.md §1.2, written from the official module tree (not from
# our mapping): HF Llama + LLaVA mm_projector + GLaMM region encoder (mmcv
# ConvModule names) + segment-anything SAM + text_hidden_fcs. ``d`` holds the
# sizes; FULL is GLaMM-7B.
FULL = dict(vocab=32007, hidden=4096, ffn=11008, layers=32, clip=1024,
            levels=4, fuse=5, roi=14, pos=256, sam=1280, sam_depth=32,
            head_dim=80, sam_mlp=5120, grid=64, window=14,
            global_blocks=(7, 15, 23, 31), patch=16, prompt=256,
            dec_mlp=2048, iou_hidden=256)


def official_glamm_shapes(d):
    """``{official key: shape}`` of a GLaMM release with sizes ``d``."""
    h, v, c, p = d['hidden'], d['vocab'], d['clip'], d['prompt']
    out = {'model.embed_tokens.weight': (v, h)}
    for i in range(d['layers']):
        pre = f'model.layers.{i}.'
        for name in ('q', 'k', 'v', 'o'):
            out[pre + f'self_attn.{name}_proj.weight'] = (h, h)
        out[pre + 'mlp.gate_proj.weight'] = (d['ffn'], h)
        out[pre + 'mlp.up_proj.weight'] = (d['ffn'], h)
        out[pre + 'mlp.down_proj.weight'] = (h, d['ffn'])
        out[pre + 'input_layernorm.weight'] = (h, )
        out[pre + 'post_attention_layernorm.weight'] = (h, )
    out['model.norm.weight'] = (h, )
    out['lm_head.weight'] = (v, h)
    # LLaVA mlp2x_gelu projector: Linear, GELU, Linear
    out.update({'model.mm_projector.0.weight': (h, c),
                'model.mm_projector.0.bias': (h, ),
                'model.mm_projector.2.weight': (h, h),
                'model.mm_projector.2.bias': (h, )})
    # MLVLROIQueryModule
    reg = 'model.region_encoder.'
    for i in range(d['levels']):  # 1x1 conv, +2 coordinate channels
        out[reg + f'mlvl_fuse.input_conv.{i}.weight'] = (c, c + 2, 1, 1)
        out[reg + f'mlvl_fuse.input_conv.{i}.bias'] = (c, )
    for i in range(d['fuse']):  # ConvModule 3x3 + GN, conv without bias
        out[reg + f'mlvl_fuse.fuse_convs.{i}.conv.weight'] = (c, c, 3, 3)
        out[reg + f'mlvl_fuse.fuse_convs.{i}.gn.weight'] = (c, )
        out[reg + f'mlvl_fuse.fuse_convs.{i}.gn.bias'] = (c, )
    for i in range(d['levels']):
        out[reg + f'roi_align.pconvs.{i}.weight'] = (c, c, 3, 3)
        out[reg + f'roi_align.pconvs.{i}.bias'] = (c, )
    # pos_embedd: Linear(4, pos), ReLU, LN(pos), Linear(pos, c), ReLU, LN(c)
    for idx, shape in ((0, (d['pos'], 4)), (2, (d['pos'], )),
                       (3, (c, d['pos'])), (5, (c, ))):
        out[reg + f'roi_align.pos_embedd.{idx}.weight'] = shape
        out[reg + f'roi_align.pos_embedd.{idx}.bias'] = shape[:1]
    out[reg + 'roi_align.updims.weight'] = (h, c)
    out[reg + 'roi_align.updims.bias'] = (h, )
    out[reg + 'roi_align.flatten_linear.weight'] = (c, c * d['roi']**2)
    out[reg + 'roi_align.flatten_linear.bias'] = (c, )
    # segment-anything ViT image encoder
    sam, e, g = 'model.grounding_encoder.', d['sam'], d['grid']
    enc = sam + 'image_encoder.'
    out[enc + 'pos_embed'] = (1, g, g, e)
    out[enc + 'patch_embed.proj.weight'] = (e, 3, d['patch'], d['patch'])
    out[enc + 'patch_embed.proj.bias'] = (e, )
    for i in range(d['sam_depth']):
        blk = enc + f'blocks.{i}.'
        size = g if i in d['global_blocks'] else d['window']
        for name, shape in (('norm1', (e, )), ('attn.qkv', (3 * e, e)),
                            ('attn.proj', (e, e)), ('norm2', (e, )),
                            ('mlp.lin1', (d['sam_mlp'], e)),
                            ('mlp.lin2', (e, d['sam_mlp']))):
            out[blk + name + '.weight'] = shape
            out[blk + name + '.bias'] = shape[:1]
        out[blk + 'attn.rel_pos_h'] = (2 * size - 1, d['head_dim'])
        out[blk + 'attn.rel_pos_w'] = (2 * size - 1, d['head_dim'])
    out[enc + 'neck.0.weight'] = (p, e, 1, 1)  # conv, no bias
    out[enc + 'neck.2.weight'] = (p, p, 3, 3)
    for idx in (1, 3):  # LayerNorm2d
        out[enc + f'neck.{idx}.weight'] = (p, )
        out[enc + f'neck.{idx}.bias'] = (p, )
    # prompt encoder
    pe = sam + 'prompt_encoder.'
    out[pe + 'pe_layer.positional_encoding_gaussian_matrix'] = (2, p // 2)
    for i in range(4):
        out[pe + f'point_embeddings.{i}.weight'] = (1, p)
    out[pe + 'not_a_point_embed.weight'] = (1, p)
    out[pe + 'no_mask_embed.weight'] = (1, p)
    # mask_downscaling: conv 1->4, LN2d, GELU, conv 4->16, LN2d, GELU,
    # conv 16->p
    for idx, shape in ((0, (4, 1, 2, 2)), (1, (4, )), (3, (16, 4, 2, 2)),
                       (4, (16, )), (6, (p, 16, 1, 1))):
        out[pe + f'mask_downscaling.{idx}.weight'] = shape
        out[pe + f'mask_downscaling.{idx}.bias'] = shape[:1]
    # mask decoder: two-way transformer (cross attention at p / 2)
    dec = sam + 'mask_decoder.'

    def attention(prefix, inner):
        for name in ('q', 'k', 'v'):
            out[prefix + f'{name}_proj.weight'] = (inner, p)
            out[prefix + f'{name}_proj.bias'] = (inner, )
        out[prefix + 'out_proj.weight'] = (p, inner)
        out[prefix + 'out_proj.bias'] = (p, )

    for i in range(2):
        lay = dec + f'transformer.layers.{i}.'
        attention(lay + 'self_attn.', p)
        attention(lay + 'cross_attn_token_to_image.', p // 2)
        attention(lay + 'cross_attn_image_to_token.', p // 2)
        for k in range(1, 5):
            out[lay + f'norm{k}.weight'] = (p, )
            out[lay + f'norm{k}.bias'] = (p, )
        out[lay + 'mlp.lin1.weight'] = (d['dec_mlp'], p)
        out[lay + 'mlp.lin1.bias'] = (d['dec_mlp'], )
        out[lay + 'mlp.lin2.weight'] = (p, d['dec_mlp'])
        out[lay + 'mlp.lin2.bias'] = (p, )
    attention(dec + 'transformer.final_attn_token_to_image.', p // 2)
    out[dec + 'transformer.norm_final_attn.weight'] = (p, )
    out[dec + 'transformer.norm_final_attn.bias'] = (p, )
    out[dec + 'iou_token.weight'] = (1, p)
    out[dec + 'mask_tokens.weight'] = (4, p)  # 3 multimask outputs + 1
    # ConvTranspose2d(p, p/4), LN2d, GELU, ConvTranspose2d(p/4, p/8)
    for idx, shape in ((0, (p, p // 4, 2, 2)), (1, (p // 4, )),
                       (3, (p // 4, p // 8, 2, 2))):
        out[dec + f'output_upscaling.{idx}.weight'] = shape
        out[dec + f'output_upscaling.{idx}.bias'] = (shape[1] if idx != 1
                                                     else shape[0], )
    for m in range(4):  # MLP(p, p, p / 8, 3)
        for idx, shape in ((0, (p, p)), (1, (p, p)), (2, (p // 8, p))):
            name = dec + f'output_hypernetworks_mlps.{m}.layers.{idx}.'
            out[name + 'weight'] = shape
            out[name + 'bias'] = shape[:1]
    for idx, shape in ((0, (d['iou_hidden'], p)),
                       (1, (d['iou_hidden'], d['iou_hidden'])),
                       (2, (4, d['iou_hidden']))):  # MLP(p, 256, 4, 3)
        out[dec + f'iou_prediction_head.layers.{idx}.weight'] = shape
        out[dec + f'iou_prediction_head.layers.{idx}.bias'] = shape[:1]
    # [SEG] projection: Linear(h, h), ReLU, Linear(h, 256), Dropout
    out.update({'model.text_hidden_fcs.0.0.weight': (h, h),
                'model.text_hidden_fcs.0.0.bias': (h, ),
                'model.text_hidden_fcs.0.2.weight': (p, h),
                'model.text_hidden_fcs.0.2.bias': (p, )})
    return out


def test_official_key_table_full_size():
    """At GLaMM-7B size the table has §1.2's 936 tensors (LLM 291,
    mm_projector 4, region encoder 43, SAM 594, text_hidden_fcs 4) and
    7.7175 B parameters."""
    shapes = official_glamm_shapes(FULL)
    groups = {}
    for key in shapes:
        group = ('sam' if key.startswith('model.grounding_encoder.') else
                 key.split('.')[1] if key.startswith(
                     ('model.mm_projector', 'model.region_encoder',
                      'model.text_hidden_fcs')) else 'llm')
        groups[group] = groups.get(group, 0) + 1
    assert groups == dict(llm=291, mm_projector=4, region_encoder=43,
                          sam=594, text_hidden_fcs=4)
    numel = {k: math.prod(s) for k, s in shapes.items()}
    assert len(shapes) == 936
    assert round(sum(numel.values()) / 1e9, 4) == 7.7175
    region = sum(v for k, v in numel.items() if '.region_encoder.' in k)
    assert round(region / 1e6, 1) == 299.1
    assert round(sum(v for k, v in numel.items() if 'grounding_encoder' in k)
                 / 1e6, 1) == 641.1


#: the tiny GLaMM of ``glamm_cfg`` in the same terms (vocab: the tokenizer's
#: + the 7 tokens GLaMM adds; the converter appends <image>)
TINY = dict(hidden=128, ffn=256, layers=2, clip=64, levels=2, fuse=2, roi=4,
            pos=32, sam=64, sam_depth=2, head_dim=32, sam_mlp=128, grid=8,
            window=0, global_blocks=(0, 1), patch=16, prompt=128,
            dec_mlp=256, iou_hidden=128)

# Where a release tensor must land, by hand from the transformers (Llama,
# SamModel) and peft naming conventions; one key per rule family.
LM = 'language_model.model.base_model.model.'
SAM = 'grounding_head.sam.'
LANDS = {
    'model.embed_tokens.weight': LM + 'model.embed_tokens.weight',
    'lm_head.weight': LM + 'lm_head.weight',
    'model.layers.1.self_attn.q_proj.weight':
    LM + 'model.layers.1.self_attn.q_proj.base_layer.weight',
    'model.layers.1.self_attn.k_proj.weight':
    LM + 'model.layers.1.self_attn.k_proj.weight',
    'model.layers.0.self_attn.v_proj.weight':
    LM + 'model.layers.0.self_attn.v_proj.base_layer.weight',
    'model.layers.0.mlp.down_proj.weight':
    LM + 'model.layers.0.mlp.down_proj.weight',
    'model.layers.1.post_attention_layernorm.weight':
    LM + 'model.layers.1.post_attention_layernorm.weight',
    'model.norm.weight': LM + 'model.norm.weight',
    'model.mm_projector.2.weight': 'projector.layers.2.weight',
    'model.text_hidden_fcs.0.0.bias': 'seg_projector.layers.0.bias',
    'model.region_encoder.mlvl_fuse.fuse_convs.1.gn.weight':
    'region_encoder.mlvl_fuse.fuse_convs.1.gn.weight',
    'model.region_encoder.roi_align.flatten_linear.weight':
    'region_encoder.roi_align.flatten_linear.weight',
    'model.grounding_encoder.image_encoder.blocks.1.attn.qkv.weight':
    SAM + 'vision_encoder.layers.1.attn.qkv.weight',
    'model.grounding_encoder.image_encoder.blocks.0.mlp.lin1.bias':
    SAM + 'vision_encoder.layers.0.mlp.lin1.bias',
    'model.grounding_encoder.image_encoder.neck.2.weight':
    SAM + 'vision_encoder.neck.conv2.weight',
    'model.grounding_encoder.image_encoder.neck.3.bias':
    SAM + 'vision_encoder.neck.layer_norm2.bias',
    'model.grounding_encoder.prompt_encoder.mask_downscaling.4.weight':
    SAM + 'prompt_encoder.mask_embed.layer_norm2.weight',
    'model.grounding_encoder.prompt_encoder.not_a_point_embed.weight':
    SAM + 'prompt_encoder.not_a_point_embed.weight',
    'model.grounding_encoder.mask_decoder.transformer.layers.0.'
    'cross_attn_image_to_token.out_proj.weight':
    SAM + 'mask_decoder.transformer.layers.0.cross_attn_image_to_token.'
    'out_proj.weight',
    'model.grounding_encoder.mask_decoder.output_upscaling.3.weight':
    SAM + 'mask_decoder.upscale_conv2.weight',
    'model.grounding_encoder.mask_decoder.output_hypernetworks_mlps.2.'
    'layers.2.bias':
    SAM + 'mask_decoder.output_hypernetworks_mlps.2.proj_out.bias',
}


@pytest.fixture(scope='module')
def table_release(tmp_path_factory, tok_dir):
    """A fake release written from the key table (random tensors, each
    unique), 2 shards + index, with inv_freq buffers and one unknown key."""
    from transformers import AutoTokenizer
    vocab = len(AutoTokenizer.from_pretrained(tok_dir)) + 7
    shapes = official_glamm_shapes(dict(TINY, vocab=vocab))
    gen = torch.Generator().manual_seed(0)
    official = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
    inv_freq = [f'model.layers.{i}.self_attn.rotary_emb.inv_freq'
                for i in range(TINY['layers'])]
    extra = dict({k: torch.arange(16.) for k in inv_freq},
                 **{UNKNOWN_KEY: torch.ones(3)})
    src = tmp_path_factory.mktemp('table_release') / 'GLaMM-tiny'
    src.mkdir()
    keys = list(official) + list(extra)
    weight_map = {}
    for i, shard in enumerate((keys[::2], keys[1::2]), 1):
        name = f'pytorch_model-0000{i}-of-00002.bin'
        torch.save({k: dict(official, **extra)[k] for k in shard}, src / name)
        weight_map.update({k: name for k in shard})
    with open(src / 'pytorch_model.bin.index.json', 'w') as f:
        json.dump(dict(metadata={}, weight_map=weight_map), f)
    return dict(src=str(src), official=official, vocab=vocab,
                inv_freq=inv_freq)


def test_release_from_key_table_fits_glamm(table_release, tok_dir, tmp_path):
    """The converter turns the independently listed release into exactly
    our GLaMM's keys: nothing unexpected, nothing missing but the CLIP tower
    (not in the releases) and the LoRA adapters (the releases are merged);
    every tensor lands unchanged, each family where transformers/peft name
    it."""
    dst = str(tmp_path / 'converted.pth')
    assert load_tool('glamm_to_mmgrounding').main(
        [table_release['src'], dst]) == 0
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    state = ckpt['state_dict']
    assert ckpt['meta']['unknown_keys'] == [UNKNOWN_KEY]
    assert sorted(ckpt['meta']['ignored_keys']) == table_release['inv_freq']
    model_state = build(tok_dir, seed=0).state_dict()
    assert sorted(set(state) - set(model_state)) == []  # unexpected
    missing = set(model_state) - set(state)
    assert sorted(k for k in missing if not k.startswith('vision_encoder.')
                  and '.lora_' not in k) == []
    assert any(k.startswith('vision_encoder.') for k in missing)
    for key, value in state.items():
        assert value.shape == model_state[key].shape, key

    official = table_release['official']
    vocab = table_release['vocab']
    for key, ours in LANDS.items():
        got = state[ours]
        if got.shape[0] == vocab + 1:  # <image>: the mean row appended
            assert torch.allclose(got[-1], official[key].mean(0))
            got = got[:-1]
        assert torch.equal(got, official[key]), (key, ours)
    # content-addressed: each release tensor is held by >= 1 converted key
    # and each converted tensor holds exactly one release tensor
    by_shape = {}
    for key, value in official.items():
        by_shape.setdefault(tuple(value.shape), []).append(key)
    holders = {}
    for ours, value in state.items():
        if value.shape[0] == vocab + 1:
            value = value[:-1]
        found = [k for k in by_shape.get(tuple(value.shape), [])
                 if torch.equal(official[k], value)]
        assert len(found) == 1, (ours, found)
        holders.setdefault(found[0], []).append(ours)
    assert set(holders) == set(official)
    assert {k: len(v) for k, v in holders.items() if len(v) > 1} == {
        'model.grounding_encoder.prompt_encoder.pe_layer.'
        'positional_encoding_gaussian_matrix': 2}  # SamModel keeps 2 copies


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
    """The full-size key table (936 tensors, §1.2), converted, fits our 7B
    graph exactly: same shapes, nothing unexpected, only LoRA and CLIP keys
    missing; and our graph exported to official names gives that table."""
    build_tiny_tokenizer(
        str(tmp_path), include_model_tokens=False, vocab_size=32000)
    with torch.device('meta'):
        model = MODELS.build(glamm_7b_cfg(str(tmp_path)))
    state = model.state_dict()
    shapes = official_glamm_shapes(FULL)
    official = {k: torch.empty(s, device='meta') for k, s in shapes.items()}
    converted, report = convert_official_glamm(official)
    assert not report.unknown and not report.ignored
    check = check_keys(converted, state)
    assert check.ok, check.shape_mismatch or check.unexpected
    assert not check.unexpected and not check.shape_mismatch
    assert {k.split('.')[0]
            for k in check.missing} == {'vision_encoder', 'language_model'}
    assert all(
        '.lora_' in k for k in check.missing
        if k.startswith('language_model'))
    # the exporter (our names -> official) agrees with the table
    exported = glamm_to_official(state)
    assert {k: tuple(v.shape) for k, v in exported.items()} == shapes


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
