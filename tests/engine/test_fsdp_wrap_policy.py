"""``grounded_lmm_wrap_policy`` on a tiny GLaMM whose LM is bf16 (LoRA,
embedding and LM head fp32, as in the 7B recipes): every FSDP1 unit must
hold one dtype (a flat parameter has one dtype), and modules whose weights
are read without a forward call (SAM's token embeddings) stay unwrapped.

FSDP wraps bottom-up: a unit owns the parameters of its subtree that no
wrapped descendant owns. The check below applies that rule to the policy's
decisions; the 2-process test (tests/test_distributed/test_fsdp.py) runs the
real wrapper.
"""
import pytest
import torch

from mmgrounding.engine.strategies import grounded_lmm_wrap_policy
from mmgrounding.registry import MODELS
from mmgrounding.testing import build_tiny_tokenizer, tiny_glamm_cfg

LORA = dict(r=4, lora_alpha=8, lora_dropout=0.0,
            target_modules=['q_proj', 'v_proj'])
LM = 'language_model.model.base_model.model.'


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    tok = str(tmp_path_factory.mktemp('tok'))
    build_tiny_tokenizer(tok)
    cfg = tiny_glamm_cfg(tok, lora=LORA)
    cfg['language_model']['torch_dtype'] = 'bfloat16'
    return MODELS.build(cfg)


def _units(model):
    """name -> dtypes of the parameters each unit owns ('' = root)."""
    assert grounded_lmm_wrap_policy(model, True, 0)
    wrapped = {n for n, m in model.named_modules()
               if n and grounded_lmm_wrap_policy(m, False, 0)}
    owner = {}
    for name, _ in model.named_parameters():
        parts = name.split('.')[:-1]
        prefixes = ['.'.join(parts[:i]) for i in range(len(parts), 0, -1)]
        owner[name] = next((p for p in prefixes if p in wrapped), '')
    units = {}
    for name, param in model.named_parameters():
        units.setdefault(owner[name], set()).add(param.dtype)
    return wrapped, units


def test_every_unit_has_one_dtype(model):
    wrapped, units = _units(model)
    for unit, dtypes in units.items():
        assert len(dtypes) == 1, (unit, dtypes)
    assert units[''] == {torch.float32}  # CLIP, projectors, SAM
    expected = {LM + 'model.embed_tokens', LM + 'lm_head', LM + 'model.norm'}
    for layer in (0, 1):
        prefix = f'{LM}model.layers.{layer}'
        expected.add(prefix)
        for proj in ('q_proj', 'v_proj'):
            for ab in ('lora_A', 'lora_B'):
                expected.add(f'{prefix}.self_attn.{proj}.{ab}.default')
    assert wrapped == expected
    assert units[f'{LM}model.layers.0'] == {torch.bfloat16}
    assert units[LM + 'model.norm'] == {torch.bfloat16}


def test_modules_read_without_forward_stay_in_the_root(model):
    wrapped, _ = _units(model)
    assert not any(n.startswith('grounding_head.') for n in wrapped)
    assert model.grounding_head.sam.mask_decoder.iou_token.weight.requires_grad
