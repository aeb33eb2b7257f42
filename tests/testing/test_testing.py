"""mmgrounding.testing: tiny tokenizer, tiny configs, fake batches."""
import pytest
import torch
from transformers import AutoTokenizer

from mmgrounding.registry import MODELS
from mmgrounding.testing import (MODEL_TOKENS, build_tiny_tokenizer,
                                 make_glamm_batch, tiny_glamm_cfg)


def test_tiny_tokenizer_round_trip(tmp_path):
    build_tiny_tokenizer(str(tmp_path))
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    assert (tok.unk_token, tok.bos_token, tok.eos_token,
            tok.pad_token) == ('<unk>', '<s>', '</s>', '<pad>')
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id,
            tok.pad_token_id) == (0, 1, 2, 3)
    ids = tok('Please segment the red circle. [SEG] <p> <g_s>').input_ids
    assert ids[0] == tok.bos_token_id
    assert tok.unk_token_id not in ids
    for name in MODEL_TOKENS:  # one id each, never split
        assert len(tok(name, add_special_tokens=False).input_ids) == 1
    text = tok.decode(ids[1:])
    assert text == 'please segment the red circle . [SEG] <p> <g_s>'


def test_tiny_tokenizer_sizes(tmp_path):
    bare = build_tiny_tokenizer(
        str(tmp_path / 'a'), include_model_tokens=False, vocab_size=500)
    assert len(bare) == 500
    assert bare.convert_tokens_to_ids('[SEG]') == bare.unk_token_id
    full = build_tiny_tokenizer(str(tmp_path / 'b'), vocab_size=500)
    assert len(full) == 500 + len(MODEL_TOKENS)
    with pytest.raises(ValueError, match='vocab_size'):
        build_tiny_tokenizer(str(tmp_path / 'c'), vocab_size=10)


def test_tiny_glamm_cfg_and_fake_batch(tmp_path):
    build_tiny_tokenizer(str(tmp_path))
    model = MODELS.build(tiny_glamm_cfg(str(tmp_path)))
    total = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < total < 5e6
    assert model.language_model.vocab_size == len(model.tokenizer)
    inputs, samples = make_glamm_batch(model, ['a b', 'a longer prompt here'],
                                       ['x [SEG]', 'y'])
    # training batches are right padded, labels only on the answers
    assert inputs['attention_mask'][:, 0].all()
    assert (inputs['labels'][inputs['attention_mask'] == 0] == -100).all()
    assert len(samples[0].gt_instances) == 1 and len(
        samples[1].gt_instances) == 0
    pred_inputs, _ = make_glamm_batch(model, ['a b', 'a longer prompt'])
    assert pred_inputs['attention_mask'][:, -1].all()  # left padded
    assert inputs['grounding_pixels'].shape[-1] == 128
    assert torch.equal(inputs['grounding_sizes'][0], torch.tensor([96, 128]))
