"""OpenSeeD pixel decoder, DINO decoder and <seg> similarity (tiny sizes)."""
import math

import pytest
import torch

from mmgrounding.models.layers import (OpenSeeDPixelDecoder,
                                       OpenSeeDTransformerDecoder,
                                       SegTokenSimilarity,
                                       openseed_decoder_layer_cfg,
                                       openseed_encoder_cfg)
from mmgrounding.registry import MODELS


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (two oversubscribe the shared 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


D = 32


def tiny_pixel_decoder():
    return MODELS.build(
        dict(
            type='OpenSeeDPixelDecoder',
            in_channels=(16, 32, 64, 128),
            strides=(4, 8, 16, 32),
            feat_channels=D,
            out_channels=D,
            encoder=openseed_encoder_cfg(
                embed_dims=D, num_layers=1, num_heads=4,
                feedforward_channels=2 * D),
            positional_encoding=dict(num_feats=D // 2, normalize=True)))


def backbone_maps(batch=2, size=128):
    return [
        torch.randn(batch, c, size // s, size // s)
        for c, s in zip((16, 32, 64, 128), (4, 8, 16, 32))
    ]


def test_pixel_decoder_levels_shapes_and_order():
    torch.manual_seed(0)
    decoder = tiny_pixel_decoder()
    decoder.init_weights()
    mask_feature, levels = decoder(backbone_maps())
    assert mask_feature.shape == (2, D, 32, 32)  # 1/4
    # official order: high to low resolution, with the extra 1/64 level
    assert [tuple(m.shape) for m in levels] == [(2, D, 16, 16),
                                                (2, D, 8, 8), (2, D, 4, 4),
                                                (2, D, 2, 2)]
    assert len(decoder.input_convs) == 3 and len(decoder.extra_convs) == 1
    assert decoder.level_encoding.weight.shape == (4, D)
    # input conv i reads backbone map i + 1 (res3, res4, res5)
    assert [c.conv.in_channels for c in decoder.input_convs] == [32, 64, 128]
    assert decoder.extra_convs[0].conv.stride == (2, 2)
    assert decoder.extra_convs[0].conv.in_channels == 128


def test_pixel_decoder_inputs_reach_the_right_outputs():
    torch.manual_seed(0)
    decoder = tiny_pixel_decoder().eval()
    maps = backbone_maps(batch=1)
    mask0, levels0 = decoder(maps)
    # Changing the res2 input touches only the FPN path (mask features),
    # never the encoder levels.
    maps2 = [maps[0] + 1.0] + maps[1:]
    mask1, levels1 = decoder(maps2)
    for a, b in zip(levels0, levels1):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(mask0, mask1)
    # Changing res5 changes both the 1/32 input and the extra 1/64 level.
    maps3 = maps[:3] + [maps[3] * 2.0]
    _, levels3 = decoder(maps3)
    assert not torch.allclose(levels0[3], levels3[3])


def test_pixel_decoder_rejects_level_mismatch():
    with pytest.raises(ValueError, match='attends'):
        OpenSeeDPixelDecoder(
            in_channels=(16, 32, 64, 128),
            feat_channels=D,
            out_channels=D,
            num_extra_levels=2,
            encoder=openseed_encoder_cfg(embed_dims=D, num_layers=1,
                                         num_heads=4),
            positional_encoding=dict(num_feats=D // 2, normalize=True))


def test_deformable_decoder_shapes_and_refinement():
    torch.manual_seed(0)
    decoder = OpenSeeDTransformerDecoder(
        num_layers=2,
        layer_cfg=openseed_decoder_layer_cfg(
            embed_dims=D, num_heads=4, feedforward_channels=2 * D),
        inverse_sigmoid_eps=1e-5)
    assert decoder.ref_point_head.layers[0].in_features == 2 * D
    shapes = torch.tensor([[2, 2], [4, 4], [8, 8], [16, 16]])
    start = torch.cat((shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]))
    value = torch.randn(2, int(shapes.prod(1).sum()), D)
    query = torch.randn(2, 5, D)
    ref = torch.rand(2, 5, 4) * 0.5 + 0.25
    reg = torch.nn.Linear(D, 4)
    hidden, refs = decoder(
        query=query, value=value, key_padding_mask=None,
        self_attn_mask=None, reference_points=ref, spatial_shapes=shapes,
        level_start_index=start, valid_ratios=torch.ones(2, 4, 2),
        reg_branches=[reg, reg])
    assert hidden.shape == (2, 2, 5, D)
    assert refs.shape == (3, 2, 5, 4)
    torch.testing.assert_close(refs[0], ref)
    # layer 1 refines the input box: sigmoid(reg(out) + logit(ref))
    assert refs[1].requires_grad
    # hidden states are normed by decoder.norm (zero mean per token)
    torch.testing.assert_close(
        hidden.mean(-1), torch.zeros(2, 2, 5), atol=1e-4, rtol=0)


def test_decoder_eps_is_used_in_refinement():
    # A reference box at exactly 0 is inverted to log(eps / 1): with zero
    # regression the refined box is sigmoid(log(eps)) = eps / (1 + eps).
    torch.manual_seed(0)
    for eps in (1e-5, 1e-3):
        decoder = OpenSeeDTransformerDecoder(
            num_layers=1,
            layer_cfg=openseed_decoder_layer_cfg(
                embed_dims=D, num_heads=4, feedforward_channels=2 * D),
            inverse_sigmoid_eps=eps)
        reg = torch.nn.Linear(D, 4)
        torch.nn.init.zeros_(reg.weight)
        torch.nn.init.zeros_(reg.bias)
        shapes = torch.tensor([[2, 2], [4, 4], [8, 8], [16, 16]])
        start = torch.cat(
            (shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]))
        ref = torch.zeros(1, 1, 4)
        _, refs = decoder(
            query=torch.randn(1, 1, D),
            value=torch.randn(1, 340, D),
            key_padding_mask=None, self_attn_mask=None,
            reference_points=ref, spatial_shapes=shapes,
            level_start_index=start, valid_ratios=torch.ones(1, 4, 2),
            reg_branches=[reg])
        expected = 1.0 / (1.0 + 1.0 / eps)  # sigmoid(log(eps))
        assert refs[1].flatten()[0].item() == pytest.approx(expected,
                                                            rel=1e-3)


def test_seg_token_similarity_hand_values_and_mask():
    sim = SegTokenSimilarity(embed_dims=2, prompt_dim=3)
    with torch.no_grad():
        sim.class_embed.copy_(torch.tensor([[1., 0., 0.], [0., 2., 0.]]))
        sim.logit_scale.fill_(0.5)
    queries = torch.tensor([[[3.0, 2.0]]])  # @ class_embed = (3, 4, 0)
    prompts = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 0.0, 9.0]]])
    logits = sim(queries, prompts)
    scale = math.exp(0.5)
    expected = [scale * (3 * 1 + 4 * 1) / 5.0, 0.0]
    assert logits.shape == (1, 1, 2)
    torch.testing.assert_close(logits[0, 0], torch.tensor(expected),
                               rtol=1e-5, atol=1e-6)
    # the padded column (index 1, raw logit 0) is excluded from the max;
    # a negative real column stays the max
    prompts2 = torch.tensor([[[-1.0, -1.0, 0.0], [0.0, 0.0, 9.0]]])
    best = SegTokenSimilarity.masked_max(
        sim(queries, prompts2), torch.tensor([[True, False]]))
    assert best.item() == pytest.approx(-scale * 7 / 5.0, rel=1e-5)
    none = SegTokenSimilarity.masked_max(sim(queries, prompts2[:, :0]),
                                         torch.zeros(1, 0, dtype=torch.bool))
    assert torch.isinf(none).all()
