"""LLaVA-G interactive_model -> SemanticSAMPromptEncoder on fake releases.

The interactive predictor layout is written out here from the official
module list (``idino_decoder_no_iou_token_partwhole_all_llm``: 9 DINO
layers, ``iou_prediction_head``, ``mask_tokens`` [3, d], ``pb_embedding``
and ``label_enc`` [2, d], dead ``class_embed``/``class_embed_part``
[d, 512] and ``lang_mapper`` [512, d]; ``obj_projector`` and
``logit_scale`` at the model level), not by inverting the converter. The
backbone and pixel-decoder rows are those of the grounding model (same
code in the release), taken from the OpenSeeD conversion test's layout.
"""
from collections import OrderedDict

import pytest
import torch

from mmgrounding.models.grounding_heads import tiny_openseed_head_cfg
from mmgrounding.models.prompt_encoders import (
    INTERACTIVE_PREFIX, SemanticSAMPromptEncoder,
    convert_semantic_sam_prompt_encoder, tiny_semantic_sam_prompt_encoder_cfg)
from mmgrounding.registry import MODELS
from mmgrounding.testing import load_script
from test_openseed_conversion import (msdeform, official_layout,
                                      swin_relative_position_index,
                                      tiny_release)

P = INTERACTIVE_PREFIX
PR = 'sem_seg_head.predictor.'


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def interactive_layout(embed=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24),
                       window=7, d=256, ffn=2048, enc_layers=6, dec_layers=9,
                       attn_heads=8, lm_dim=4096, dim_proj=512):
    """(name, shape) of every tensor of ``interactive_model.model``."""
    shared = [(n, s) for n, s in official_layout(
        embed=embed, depths=depths, heads=heads, window=window, d=d,
        ffn=ffn, enc_layers=enc_layers, dec_layers=1)
        if n.startswith(('backbone.', 'sem_seg_head.pixel_decoder.'))]
    if attn_heads != 8:  # the shared layout is written for 8 heads
        shared = [(n, (s[0] * attn_heads // 8, ) + s[1:]) if (
            'sampling_offsets' in n or 'attention_weights' in n) else (n, s)
                  for n, s in shared]
    out = list(shared)
    for i in range(dec_layers):
        b = f'{PR}decoder.layers.{i}.'
        out += msdeform(b + 'cross_attn.', d, attn_heads, 4, 4)
        out += [(b + 'norm1.weight', (d, )), (b + 'norm1.bias', (d, )),
                (b + 'self_attn.in_proj_weight', (3 * d, d)),
                (b + 'self_attn.in_proj_bias', (3 * d, )),
                (b + 'self_attn.out_proj.weight', (d, d)),
                (b + 'self_attn.out_proj.bias', (d, )),
                (b + 'norm2.weight', (d, )), (b + 'norm2.bias', (d, )),
                (b + 'linear1.weight', (ffn, d)), (b + 'linear1.bias',
                                                   (ffn, )),
                (b + 'linear2.weight', (d, ffn)), (b + 'linear2.bias', (d, )),
                (b + 'norm3.weight', (d, )), (b + 'norm3.bias', (d, ))]
    out += [(f'{PR}decoder.ref_point_head.layers.0.weight', (d, 2 * d)),
            (f'{PR}decoder.ref_point_head.layers.0.bias', (d, )),
            (f'{PR}decoder.ref_point_head.layers.1.weight', (d, d)),
            (f'{PR}decoder.ref_point_head.layers.1.bias', (d, )),
            (PR + 'decoder_norm.weight', (d, )),
            (PR + 'decoder_norm.bias', (d, )),
            (PR + 'decoder.norm.weight', (d, )),
            (PR + 'decoder.norm.bias', (d, ))]
    box = [('layers.0.weight', (d, d)), ('layers.0.bias', (d, )),
           ('layers.1.weight', (d, d)), ('layers.1.bias', (d, )),
           ('layers.2.weight', (4, d)), ('layers.2.bias', (4, ))]
    out += [(f'{PR}_bbox_embed.{n}', s) for n, s in box]
    for owner in ('bbox_embed', 'decoder.bbox_embed'):
        out += [(f'{PR}{owner}.{i}.{n}', s) for i in range(dec_layers)
                for n, s in box]
    for k, rows in enumerate((d, d, d)):
        out += [(f'{PR}mask_embed.layers.{k}.weight', (rows, d)),
                (f'{PR}mask_embed.layers.{k}.bias', (rows, ))]
    for k, rows in enumerate((d, d, 1)):
        out += [(f'{PR}iou_prediction_head.layers.{k}.weight', (rows, d)),
                (f'{PR}iou_prediction_head.layers.{k}.bias', (rows, ))]
    out += [(PR + 'mask_tokens.weight', (3, d)),
            (PR + 'pb_embedding.weight', (2, d)),
            (PR + 'label_enc.weight', (2, d)),
            (PR + 'class_embed', (d, dim_proj)),
            (PR + 'class_embed_part', (d, dim_proj)),
            (PR + 'lang_mapper', (dim_proj, d)),
            ('logit_scale', ()),
            ('obj_projector.weight', (lm_dim, d)),
            ('obj_projector.bias', (lm_dim, )),
            ('criterion.empty_weight', (2, ))]
    return out


def fake_interactive(layout, window, random=True):
    """Tensors of a layout; duplicates share their original's tensor."""
    state = OrderedDict()
    for name, shape in layout:
        if name.endswith('relative_position_index'):
            state[P + name] = swin_relative_position_index(window)
        else:
            state[P + name] = torch.randn(shape) if random else torch.zeros(
                shape)
    pr = P + PR
    for name in list(state):
        for dup in ('decoder.bbox_embed.', 'bbox_embed.'):
            if name.startswith(pr + dup):
                rest = name[len(pr + dup):].split('.', 1)[1]
                state[name] = state[pr + '_bbox_embed.' + rest]
    for kind in ('weight', 'bias'):
        state[pr + 'decoder.norm.' + kind] = state[pr + 'decoder_norm.' +
                                                    kind]
    return state


TINY = dict(embed=16, depths=(1, 1, 1, 1), heads=(1, 1, 2, 4), window=4,
            d=32, ffn=64, enc_layers=1, dec_layers=2, attn_heads=4,
            lm_dim=24)

DROPPED = sorted([
    'criterion.empty_weight', 'logit_scale', PR + 'class_embed',
    PR + 'class_embed_part', PR + 'lang_mapper'
])


def test_full_size_layout_has_the_release_key_counts():
    names = [n for n, _ in interactive_layout()]
    assert len(names) == len(set(names)) == 652
    assert sum(n.startswith('backbone.') for n in names) == 189
    assert sum(n.startswith('sem_seg_head.pixel_decoder.')
               for n in names) == 121
    assert sum(n.startswith(PR) for n in names) == 338


def test_full_size_conversion_matches_the_encoder_exactly():
    release = fake_interactive(interactive_layout(), 7, random=False)
    state, report = convert_semantic_sam_prompt_encoder(
        release, dst_prefix='prompt_encoder.')
    enc = SemanticSAMPromptEncoder(lm_dim=4096)
    want = {'prompt_encoder.' + k: tuple(v.shape)
            for k, v in enc.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    assert set(got) - set(want) == set()  # zero unexpected
    assert set(want) - set(got) == set()  # zero missing
    assert got == want
    assert len(report.duplicates) == 2 + 2 * 9 * 6
    assert sorted(report.dropped) == DROPPED
    assert len(report.mapped) + len(report.duplicates) + \
        len(report.dropped) == 652


def test_tiny_conversion_loads_strictly_with_the_right_tensors():
    torch.manual_seed(0)
    release = fake_interactive(interactive_layout(**TINY), TINY['window'])
    release['seg_model.model.backbone.x'] = torch.zeros(1)  # other model
    state, _ = convert_semantic_sam_prompt_encoder(release)
    enc = MODELS.build(tiny_semantic_sam_prompt_encoder_cfg(TINY['lm_dim']))
    enc.load_state_dict(state, strict=True)
    pr = P + PR
    assert torch.equal(enc.iou_prediction_head.layers[2].weight,
                       release[pr + 'iou_prediction_head.layers.2.weight'])
    assert torch.equal(enc.mask_tokens.weight, release[pr +
                                                       'mask_tokens.weight'])
    assert torch.equal(enc.pb_embedding.weight,
                       release[pr + 'pb_embedding.weight'])
    assert torch.equal(enc.label_enc.weight, release[pr + 'label_enc.weight'])
    assert torch.equal(enc.obj_projector.weight,
                       release[P + 'obj_projector.weight'])
    assert torch.equal(enc.obj_projector.bias,
                       release[P + 'obj_projector.bias'])
    assert torch.equal(enc.mask_embed.layers[1].bias,
                       release[pr + 'mask_embed.layers.1.bias'])
    assert torch.equal(enc.reg_branch.layers[0].weight,
                       release[pr + '_bbox_embed.layers.0.weight'])
    assert torch.equal(enc.decoder.norm.weight,
                       release[pr + 'decoder_norm.weight'])
    layer = enc.decoder.layers[1]
    assert torch.equal(layer.norms[0].weight,
                       release[pr + 'decoder.layers.1.norm2.weight'])
    assert torch.equal(layer.cross_attn.sampling_offsets.weight,
                       release[pr + 'decoder.layers.1.cross_attn.'
                               'sampling_offsets.weight'])
    assert torch.equal(
        enc.pixel_decoder.extra_convs[0].conv.weight,
        release[P + 'sem_seg_head.pixel_decoder.input_proj.3.0.weight'])
    assert torch.equal(enc.backbone.stages[1].blocks[0].attn.w_msa.qkv.bias,
                       release[P + 'backbone.layers.1.blocks.0.attn.qkv.bias'])
    # a converted encoder runs
    enc.eval()
    out = enc(torch.randn(1, 3, 128, 128),
              [[dict(type='box', box=torch.tensor([8., 8., 64., 64.]))]])
    assert out[0].shape == (1, TINY['lm_dim'])


def test_unknown_keys_and_differing_duplicates_raise():
    release = fake_interactive(interactive_layout(**TINY), TINY['window'])
    bad = OrderedDict(release)
    bad[P + PR + 'enc_output.weight'] = torch.zeros(32, 32)
    with pytest.raises(ValueError, match='matches no rule'):
        convert_semantic_sam_prompt_encoder(bad)
    bad = OrderedDict(release)
    bad[P + 'iou_token.weight'] = torch.zeros(1, 32)
    with pytest.raises(ValueError, match='matches no rule'):
        convert_semantic_sam_prompt_encoder(bad)
    bad = OrderedDict(release)
    bad[P + PR + 'query_feat.weight'] = torch.zeros(3, 32)
    with pytest.raises(ValueError, match='match no rule'):
        convert_semantic_sam_prompt_encoder(bad)
    bad = OrderedDict(release)
    key = P + PR + 'decoder.bbox_embed.1.layers.2.bias'
    bad[key] = bad[key] + 1
    with pytest.raises(ValueError, match='differs'):
        convert_semantic_sam_prompt_encoder(bad)
    with pytest.raises(ValueError, match='no key'):
        convert_semantic_sam_prompt_encoder({'seg_model.model.x':
                                             torch.zeros(1)})


def test_converter_script_writes_both_models(tmp_path):
    # tiny releases and --no-check (the full-size key equality is tested
    # above; the check itself is tested below on the tiny encoder)
    tool = load_script('tools/model_converters/llava_g_to_mmgrounding.py')
    release = tiny_release()
    release.update(fake_interactive(interactive_layout(**TINY),
                                    TINY['window']))
    src = tmp_path / 'release.bin'
    torch.save(release, src)
    dst = tmp_path / 'out.pth'
    assert tool.main([
        str(src), str(dst), '--prefix', 'grounding_head.',
        '--prompt-encoder-prefix', 'prompt_encoder.', '--no-check'
    ]) == 0
    ckpt = torch.load(dst, weights_only=False)
    state = ckpt['state_dict']
    enc_state = {k[len('prompt_encoder.'):]: v for k, v in state.items()
                 if k.startswith('prompt_encoder.')}
    head_state = {k[len('grounding_head.'):]: v for k, v in state.items()
                  if k.startswith('grounding_head.')}
    assert len(head_state) + len(enc_state) == len(state)
    head = MODELS.build(tiny_openseed_head_cfg(24))
    head.load_state_dict(head_state, strict=True)
    enc = MODELS.build(tiny_semantic_sam_prompt_encoder_cfg(TINY['lm_dim']))
    enc.load_state_dict(enc_state, strict=True)
    assert torch.equal(enc.obj_projector.weight,
                       release[P + 'obj_projector.weight'])
    assert sorted(k for k in ckpt['meta']['dropped']
                  if k.startswith(P)) == [P + k for k in DROPPED]
    assert ckpt['meta']['prompt_encoder_prefix'] == 'prompt_encoder.'
    # the tool's key check against an encoder
    assert tool.check_against_head(
        {'prompt_encoder.' + k: v for k, v in enc_state.items()},
        'prompt_encoder.', TINY['lm_dim'], module=enc) == []
    del enc_state['mask_tokens.weight']
    problems = tool.check_against_head(
        {'p.' + k: v for k, v in enc_state.items()}, 'p.', 0, module=enc)
    assert problems == ['missing: p.mask_tokens.weight']
    # the same prefix for both would collide: refused, nothing written
    dst2 = tmp_path / 'bad.pth'
    assert tool.main([str(src), str(dst2), '--no-check',
                      '--prompt-encoder-prefix', '']) == 1
    assert not dst2.exists()
