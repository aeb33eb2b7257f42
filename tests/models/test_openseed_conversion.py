"""LLaVA-G seg_model -> OpenSeeDGroundingHead on fake official releases.

The fake release is built from the official module layout written out
here (detectron2 Swin, ``encoder_deform``, ``openseed_decoder``), not by
inverting the converter.
"""
from collections import OrderedDict

import pytest
import torch

from mmgrounding.models.grounding_heads import (OpenSeeDGroundingHead,
                                                tiny_openseed_head_cfg)
from mmgrounding.models.utils.openseed_checkpoint import \
    convert_openseed_grounding
from mmgrounding.registry import MODELS
from mmgrounding.testing import load_script


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (two oversubscribe the shared 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


P = 'seg_model.model.'


def swin_relative_position_index(window):
    """Original Swin's relative position index (written out)."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window),
                       indexing='ij')).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel[:, :, 0] += window - 1
    rel[:, :, 1] += window - 1
    rel[:, :, 0] *= 2 * window - 1
    return rel.sum(-1)


def official_layout(embed=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24),
                    window=7, d=256, ffn=2048, enc_layers=6, dec_layers=9,
                    prompt_dim=4096, num_classes=133):
    """(name, shape) of every tensor of ``seg_model.model`` in the release."""
    out = [('backbone.patch_embed.proj.weight', (embed, 3, 4, 4)),
           ('backbone.patch_embed.proj.bias', (embed, )),
           ('backbone.patch_embed.norm.weight', (embed, )),
           ('backbone.patch_embed.norm.bias', (embed, ))]
    for i, (depth, nh) in enumerate(zip(depths, heads)):
        c = embed * 2**i
        for j in range(depth):
            b = f'backbone.layers.{i}.blocks.{j}.'
            out += [(b + 'norm1.weight', (c, )), (b + 'norm1.bias', (c, )),
                    (b + 'attn.relative_position_bias_table',
                     ((2 * window - 1)**2, nh)),
                    (b + 'attn.relative_position_index',
                     (window**2, window**2)),
                    (b + 'attn.qkv.weight', (3 * c, c)),
                    (b + 'attn.qkv.bias', (3 * c, )),
                    (b + 'attn.proj.weight', (c, c)),
                    (b + 'attn.proj.bias', (c, )),
                    (b + 'norm2.weight', (c, )), (b + 'norm2.bias', (c, )),
                    (b + 'mlp.fc1.weight', (4 * c, c)),
                    (b + 'mlp.fc1.bias', (4 * c, )),
                    (b + 'mlp.fc2.weight', (c, 4 * c)),
                    (b + 'mlp.fc2.bias', (c, ))]
        if i < 3:
            b = f'backbone.layers.{i}.downsample.'
            out += [(b + 'reduction.weight', (2 * c, 4 * c)),
                    (b + 'norm.weight', (4 * c, )),
                    (b + 'norm.bias', (4 * c, ))]
    for i in range(4):
        c = embed * 2**i
        out += [(f'backbone.norm{i}.weight', (c, )),
                (f'backbone.norm{i}.bias', (c, ))]
    px = 'sem_seg_head.pixel_decoder.'
    for i, cin in enumerate([embed * 2, embed * 4, embed * 8, embed * 8]):
        k = 1 if i < 3 else 3
        out += [(f'{px}input_proj.{i}.0.weight', (d, cin, k, k)),
                (f'{px}input_proj.{i}.0.bias', (d, )),
                (f'{px}input_proj.{i}.1.weight', (d, )),
                (f'{px}input_proj.{i}.1.bias', (d, ))]
    out.append((px + 'transformer.level_embed', (4, d)))
    for i in range(enc_layers):
        b = f'{px}transformer.encoder.layers.{i}.'
        out += msdeform(b + 'self_attn.', d, 8, 4, 4)
        out += [(b + 'norm1.weight', (d, )), (b + 'norm1.bias', (d, )),
                (b + 'linear1.weight', (ffn, d)), (b + 'linear1.bias',
                                                   (ffn, )),
                (b + 'linear2.weight', (d, ffn)), (b + 'linear2.bias', (d, )),
                (b + 'norm2.weight', (d, )), (b + 'norm2.bias', (d, ))]
    out += [(px + 'mask_features.weight', (d, d, 1, 1)),
            (px + 'mask_features.bias', (d, )),
            (px + 'adapter_1.weight', (d, embed, 1, 1)),
            (px + 'adapter_1.norm.weight', (d, )),
            (px + 'adapter_1.norm.bias', (d, )),
            (px + 'layer_1.weight', (d, d, 3, 3)),
            (px + 'layer_1.norm.weight', (d, )),
            (px + 'layer_1.norm.bias', (d, ))]
    pr = 'sem_seg_head.predictor.'
    out += [(pr + 'enc_output.weight', (d, d)), (pr + 'enc_output.bias',
                                                 (d, )),
            (pr + 'enc_output_norm.weight', (d, )),
            (pr + 'enc_output_norm.bias', (d, )),
            (pr + 'lang_mapper', (prompt_dim, d)),
            (pr + 'class_embed', (d, prompt_dim)), (pr + 'logit_scale', ())]
    for k in range(3):
        out += [(f'{pr}mask_embed.layers.{k}.weight', (d, d)),
                (f'{pr}mask_embed.layers.{k}.bias', (d, ))]
    out += [(pr + 'decoder_norm.weight', (d, )),
            (pr + 'decoder_norm.bias', (d, )),
            (pr + 'decoder.norm.weight', (d, )),
            (pr + 'decoder.norm.bias', (d, ))]
    for i in range(dec_layers):
        b = f'{pr}decoder.layers.{i}.'
        out += msdeform(b + 'cross_attn.', d, 8, 4, 4)
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
    out += [(f'{pr}decoder.ref_point_head.layers.0.weight', (d, 2 * d)),
            (f'{pr}decoder.ref_point_head.layers.0.bias', (d, )),
            (f'{pr}decoder.ref_point_head.layers.1.weight', (d, d)),
            (f'{pr}decoder.ref_point_head.layers.1.bias', (d, ))]
    box = [('layers.0.weight', (d, d)), ('layers.0.bias', (d, )),
           ('layers.1.weight', (d, d)), ('layers.1.bias', (d, )),
           ('layers.2.weight', (4, d)), ('layers.2.bias', (4, ))]
    out += [(f'{pr}_bbox_embed.{n}', s) for n, s in box]
    for owner in ('bbox_embed', 'decoder.bbox_embed'):
        out += [(f'{pr}{owner}.{i}.{n}', s) for i in range(dec_layers)
                for n, s in box]
    out.append(('criterion.empty_weight', (num_classes + 1, )))
    return out


def msdeform(prefix, d, heads, levels, points):
    return [(prefix + 'sampling_offsets.weight',
             (heads * levels * points * 2, d)),
            (prefix + 'sampling_offsets.bias', (heads * levels * points * 2, )),
            (prefix + 'attention_weights.weight', (heads * levels * points,
                                                   d)),
            (prefix + 'attention_weights.bias', (heads * levels * points, )),
            (prefix + 'value_proj.weight', (d, d)),
            (prefix + 'value_proj.bias', (d, )),
            (prefix + 'output_proj.weight', (d, d)),
            (prefix + 'output_proj.bias', (d, ))]


def fake_release(layout, window, random=True):
    """Tensors for a layout; duplicates share their original's tensor."""
    state = OrderedDict()
    for name, shape in layout:
        if name.endswith('relative_position_index'):
            state[P + name] = swin_relative_position_index(window)
        elif random:
            state[P + name] = torch.randn(shape)
        else:
            state[P + name] = torch.zeros(shape)
    pr = P + 'sem_seg_head.predictor.'
    for name in list(state):
        for dup in ('decoder.bbox_embed.', 'bbox_embed.'):
            if name.startswith(pr + dup):
                rest = name[len(pr + dup):].split('.', 1)[1]
                state[name] = state[pr + '_bbox_embed.' + rest]
    for kind in ('weight', 'bias'):
        state[pr + 'decoder.norm.' + kind] = state[pr + 'decoder_norm.' +
                                                    kind]
    state['model.mm_projector.weight'] = torch.randn(2, 2)  # not converted
    return state


TINY = dict(embed=32, depths=(1, 1, 1, 1), heads=(1, 2, 4, 8), window=4,
            d=32, ffn=64, enc_layers=1, dec_layers=2, prompt_dim=24)


def tiny_release():
    layout = official_layout(**TINY)
    # tiny head uses 4 attention heads: patch the MSDeformAttn sizes
    layout = [(n, (s[0] // 2, ) + s[1:]) if ('sampling_offsets' in n or
                                            'attention_weights' in n) else
              (n, s) for n, s in layout]
    return fake_release(layout, TINY['window'])


def test_full_size_layout_has_the_release_key_counts():
    layout = official_layout()
    names = [n for n, _ in layout]
    assert len(names) == len(set(names)) == 644
    assert sum(n.startswith('backbone.') for n in names) == 189
    assert sum(n.startswith('sem_seg_head.pixel_decoder.')
               for n in names) == 121
    assert sum(n.startswith('sem_seg_head.predictor.') for n in names) == 333


def test_full_size_conversion_matches_head_exactly():
    release = fake_release(official_layout(), 7, random=False)
    state, report = convert_openseed_grounding(release,
                                               dst_prefix='grounding_head.')
    head = OpenSeeDGroundingHead(prompt_dim=4096)
    want = {'grounding_head.' + k: tuple(v.shape)
            for k, v in head.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    assert set(got) - set(want) == set()  # zero unexpected
    assert set(want) - set(got) == set()  # zero missing
    assert got == want
    assert len(report.duplicates) == 2 + 2 * 9 * 6
    assert sorted(report.dropped) == [
        'criterion.empty_weight', 'sem_seg_head.predictor.lang_mapper'
    ]
    assert len(report.mapped) + len(report.duplicates) + \
        len(report.dropped) == 644


def test_tiny_conversion_loads_strictly_with_the_right_tensors():
    torch.manual_seed(0)
    release = tiny_release()
    state, _ = convert_openseed_grounding(release)
    head = MODELS.build(tiny_openseed_head_cfg(TINY['prompt_dim']))
    head.load_state_dict(state, strict=True)
    pr = P + 'sem_seg_head.predictor.'
    px = P + 'sem_seg_head.pixel_decoder.'
    layer = head.decoder.layers[1]
    # decoder: norm2 follows self-attn (first), norm1 cross-attn, norm3 FFN
    assert torch.equal(layer.norms[0].weight,
                       release[pr + 'decoder.layers.1.norm2.weight'])
    assert torch.equal(layer.norms[1].weight,
                       release[pr + 'decoder.layers.1.norm1.weight'])
    assert torch.equal(layer.norms[2].weight,
                       release[pr + 'decoder.layers.1.norm3.weight'])
    assert torch.equal(layer.self_attn.attn.in_proj_weight,
                       release[pr + 'decoder.layers.1.self_attn.'
                               'in_proj_weight'])
    assert torch.equal(head.reg_branch.layers[2].weight,
                       release[pr + '_bbox_embed.layers.2.weight'])
    assert torch.equal(head.decoder.norm.bias,
                       release[pr + 'decoder_norm.bias'])
    assert torch.equal(head.memory_trans_fc.weight,
                       release[pr + 'enc_output.weight'])
    assert torch.equal(head.similarity.class_embed, release[pr +
                                                            'class_embed'])
    # pixel decoder: input_proj 0-2 = res3-5, 3 = the extra level
    assert torch.equal(head.pixel_decoder.input_convs[0].conv.weight,
                       release[px + 'input_proj.0.0.weight'])
    assert torch.equal(head.pixel_decoder.extra_convs[0].gn.weight,
                       release[px + 'input_proj.3.1.weight'])
    assert torch.equal(head.pixel_decoder.level_encoding.weight,
                       release[px + 'transformer.level_embed'])
    assert torch.equal(head.pixel_decoder.lateral_convs[0].gn.bias,
                       release[px + 'adapter_1.norm.bias'])
    assert torch.equal(head.pixel_decoder.output_convs[0].conv.weight,
                       release[px + 'layer_1.weight'])
    assert torch.equal(
        head.pixel_decoder.encoder.layers[0].ffn.layers[1].weight,
        release[px + 'transformer.encoder.layers.0.linear2.weight'])
    # backbone via mmdet's swin_converter; the relative position index of
    # the release equals mmdet's own buffer
    assert torch.equal(
        head.backbone.stages[0].blocks[0].attn.w_msa.qkv.weight,
        release[P + 'backbone.layers.0.blocks.0.attn.qkv.weight'])
    fresh = MODELS.build(tiny_openseed_head_cfg(TINY['prompt_dim']))
    assert torch.equal(
        fresh.backbone.stages[2].blocks[0].attn.w_msa.relative_position_index,
        swin_relative_position_index(TINY['window']))


def test_differing_duplicate_unknown_key_and_empty_source_raise():
    release = tiny_release()
    pr = P + 'sem_seg_head.predictor.'
    bad = OrderedDict(release)
    bad[pr + 'bbox_embed.1.layers.0.weight'] = torch.randn_like(
        bad[pr + 'bbox_embed.1.layers.0.weight'])
    with pytest.raises(ValueError, match='differs'):
        convert_openseed_grounding(bad)
    bad = OrderedDict(release)
    bad[pr + 'query_feat.weight'] = torch.zeros(3, 32)
    with pytest.raises(ValueError, match='match no rule'):
        convert_openseed_grounding(bad)
    with pytest.raises(ValueError, match='no key'):
        convert_openseed_grounding({'model.x': torch.zeros(1)})


def test_converter_script_writes_a_checked_checkpoint(tmp_path):
    tool = load_script('tools/model_converters/llava_g_to_mmgrounding.py')
    src = tmp_path / 'release.bin'
    torch.save(fake_release(official_layout(), 7, random=False), src)
    dst = tmp_path / 'out.pth'
    assert tool.main([str(src), str(dst), '--prefix', 'grounding_head.']) \
        == 0
    ckpt = torch.load(dst, weights_only=False)
    assert len(ckpt['state_dict']) == 532
    assert all(k.startswith('grounding_head.') for k in ckpt['state_dict'])
    assert sorted(ckpt['meta']['dropped']) == [
        'criterion.empty_weight', 'sem_seg_head.predictor.lang_mapper'
    ]
