"""GLaMMRegionEncoder: official key layout, per-box outputs, gradients."""
import os

import pytest
import torch

from mmgrounding.models.region_encoders import GLaMMRegionEncoder
from mmgrounding.registry import MODELS

os.environ.setdefault('HF_HUB_OFFLINE', '1')
torch.set_num_threads(1)

TINY = dict(
    type='GLaMMRegionEncoder',
    in_channels=32,
    out_channels=48,
    num_levels=4,
    image_size=32,
    roi_size=4,
    query_channels=24,
    pos_hidden_channels=16,
    norm_cfg=dict(type='GN', num_groups=8))


def _feats(batch=2, grid=4, channels=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, grid * grid, channels, generator=g)
        for _ in range(4)
    ]


def test_official_key_layout():
    enc = MODELS.build(TINY)
    keys = set(enc.state_dict())
    expected = set()
    for i in range(4):
        expected |= {f'mlvl_fuse.input_conv.{i}.weight',
                     f'mlvl_fuse.input_conv.{i}.bias',
                     f'roi_align.pconvs.{i}.weight',
                     f'roi_align.pconvs.{i}.bias'}
    for i in range(5):
        expected |= {f'mlvl_fuse.fuse_convs.{i}.conv.weight',
                     f'mlvl_fuse.fuse_convs.{i}.gn.weight',
                     f'mlvl_fuse.fuse_convs.{i}.gn.bias'}
    for i in (0, 2, 3, 5):
        expected |= {f'roi_align.pos_embedd.{i}.weight',
                     f'roi_align.pos_embedd.{i}.bias'}
    for name in ('updims', 'flatten_linear'):
        expected |= {f'roi_align.{name}.weight', f'roi_align.{name}.bias'}
    assert keys == expected and len(keys) == 43
    assert enc.mlvl_fuse.input_conv[0].in_channels == 32 + 2


def test_one_embedding_per_box_and_gradients():
    enc = MODELS.build(TINY)
    feats = [f.requires_grad_() for f in _feats()]
    boxes = [torch.tensor([[0., 0., 16., 16.], [4., 6., 30., 31.]]),
             torch.tensor([[8., 8., 24., 20.]])]
    out = enc(feats, boxes)
    assert [o.shape for o in out] == [(2, 48), (1, 48)]
    (out[0].sum() + out[1].sum()).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    for name, param in enc.named_parameters():
        assert param.grad is not None, name
    # strides: the finest level is 8x upsampled (4 px per patch of 8 px)
    assert [layer.spatial_scale for layer in enc.roi_align.roi_layers] == \
        [1.0, 0.5, 0.25, 0.125]


def test_boxes_read_their_own_image_and_position():
    enc = MODELS.build(TINY).eval()
    feats = _feats()
    feats = [torch.stack([f[0], f[0]]) for f in feats]  # identical images
    box = torch.tensor([[2., 3., 20., 25.]])
    out = enc(feats, [box, box])
    torch.testing.assert_close(out[0], out[1])
    other = [torch.stack([f[0], f[1] + 1]) for f in _feats()]
    out2 = enc(other, [box, box])
    assert not torch.allclose(out2[0], out2[1])
    moved = enc(feats, [box, box + 8])
    assert not torch.allclose(moved[0], moved[1])


def test_official_roi_frame_option():
    enc = MODELS.build(TINY).eval()
    faithful = MODELS.build(dict(TINY, roi_box_scale=32 * 224 / 336)).eval()
    faithful.load_state_dict(enc.state_dict())
    feats = _feats()
    box = [torch.tensor([[4., 4., 28., 28.]]), torch.zeros(0, 4)]
    assert not torch.allclose(enc(feats, box)[0], faithful(feats, box)[0])
    # with the frame equal to the view size both agree
    same = MODELS.build(dict(TINY, roi_box_scale=32)).eval()
    same.load_state_dict(enc.state_dict())
    torch.testing.assert_close(enc(feats, box)[0], same(feats, box)[0])


def test_no_box_in_batch_keeps_parameters_in_graph():
    enc = MODELS.build(TINY)
    out = enc(_feats(), [torch.zeros(0, 4), torch.zeros(0, 4)])
    assert [o.shape for o in out] == [(0, 48), (0, 48)]
    sum(o.sum() for o in out).backward()
    for name, param in enc.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() == 0, name


def test_bad_inputs_raise():
    enc = MODELS.build(TINY)
    with pytest.raises(ValueError, match='4 feature levels'):
        enc(_feats()[:3], [torch.zeros(0, 4)] * 2)
    with pytest.raises(ValueError, match='square grid'):
        enc([torch.randn(2, 17, 32)] * 4, [torch.ones(1, 4)] * 2)
    with pytest.raises(ValueError, match='box lists'):
        enc(_feats(), [torch.ones(1, 4)])
    with pytest.raises(ValueError, match=r'\[R, 4\]'):
        enc(_feats(), [torch.ones(1, 5), torch.ones(1, 4)])


def test_glamm_7b_region_encoder_on_meta_device():
    """1024 -> 4096 with 14x14 RoIs: 299.1M parameters (official layout)."""
    with torch.device('meta'):
        enc = GLaMMRegionEncoder(in_channels=1024, out_channels=4096)
    n_params = sum(p.numel() for p in enc.parameters())
    assert n_params == pytest.approx(299.1e6, rel=0.01)
    assert enc.roi_align.flatten_linear.in_features == 1024 * 14 * 14
    assert len(enc.state_dict()) == 43
