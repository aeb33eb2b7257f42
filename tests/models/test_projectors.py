"""MLPProjector: official layouts, norms, shapes, sizes of the 7B parts."""
import os

import pytest
import torch
from torch import nn

from mmgrounding.models.projectors import MLPProjector
from mmgrounding.registry import MODELS

os.environ.setdefault('HF_HUB_OFFLINE', '1')
torch.set_num_threads(1)


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_glamm_mm_projector_layout():
    proj = MODELS.build(
        dict(type='MLPProjector', in_channels=8, out_channels=16))
    assert isinstance(proj.layers[0], nn.Linear)
    assert isinstance(proj.layers[1], nn.GELU)
    assert isinstance(proj.layers[2], nn.Linear)
    assert {k: tuple(v.shape) for k, v in proj.state_dict().items()} == {
        'layers.0.weight': (16, 8),
        'layers.0.bias': (16, ),
        'layers.2.weight': (16, 16),
        'layers.2.bias': (16, ),
    }
    x = torch.randn(2, 5, 8)
    ref = proj.layers[2](nn.functional.gelu(proj.layers[0](x)))
    torch.testing.assert_close(proj(x), ref)


def test_glamm_text_hidden_fcs_layout():
    proj = MLPProjector(16, 4, hidden_channels=16, act='ReLU', dropout=0.)
    assert isinstance(proj.layers[1], nn.ReLU)
    assert isinstance(proj.layers[3], nn.Dropout) and proj.layers[3].p == 0
    assert proj.layers[2].weight.shape == (4, 16)
    assert proj(torch.randn(3, 16)).shape == (3, 4)


def test_single_linear_for_llava_g():
    proj = MLPProjector(8, 16, num_layers=1)
    assert set(proj.state_dict()) == {'layers.0.weight', 'layers.0.bias'}
    x = torch.randn(4, 8)
    torch.testing.assert_close(proj(x), proj.layers[0](x))


def test_batchnorm_normalises_over_all_leading_dims():
    torch.manual_seed(0)
    proj = MLPProjector(8, 4, norm='BN1d').train()
    x = torch.randn(2, 3, 8) * 5 + 3
    out = proj(x)
    assert out.shape == (2, 3, 4)
    flat = x.reshape(6, 8)
    normed = (flat - flat.mean(0)) / torch.sqrt(
        flat.var(0, unbiased=False) + 1e-5)
    ref = proj.layers(normed.reshape(2, 3, 8))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    # A single row (one [SEG] in the batch) uses the running statistics.
    assert proj(torch.randn(1, 8)).shape == (1, 4)
    assert proj(torch.randn(0, 8)).shape == (0, 4)


def test_layernorm_and_errors():
    proj = MLPProjector(8, 4, norm='LN')
    assert isinstance(proj.norm, nn.LayerNorm)
    with pytest.raises(ValueError, match=r'\[\.\.\., 8\]'):
        proj(torch.randn(2, 7))
    with pytest.raises(ValueError, match='num_layers'):
        MLPProjector(8, 4, num_layers=0)


def test_input_cast_to_weight_dtype():
    proj = MLPProjector(8, 4)
    out = proj(torch.randn(2, 8, dtype=torch.bfloat16))
    assert out.dtype == torch.float32


def test_glamm_7b_projectors_on_meta_device():
    """mm_projector 1024->4096->4096 (21.0M), text_hidden_fcs (17.8M)."""
    with torch.device('meta'):
        mm_proj = MLPProjector(1024, 4096)
        fcs = MLPProjector(4096, 256, hidden_channels=4096, act='ReLU')
    assert _n_params(mm_proj) == pytest.approx(21.0e6, rel=0.01)
    assert _n_params(fcs) == pytest.approx(17.8e6, rel=0.01)
    assert _n_params(mm_proj) == 1024 * 4096 + 4096 + 4096 * 4096 + 4096
    assert _n_params(fcs) == 4096 * 4096 + 4096 + 4096 * 256 + 256


def test_untrainable_projector_is_frozen():
    from mmgrounding.registry import MODELS
    proj = MODELS.build(
        dict(type='MLPProjector', in_channels=4, out_channels=6,
             trainable=False))
    assert not any(p.requires_grad for p in proj.parameters())
    assert all(p.requires_grad for p in MODELS.build(
        dict(type='MLPProjector', in_channels=4,
             out_channels=6)).parameters())
