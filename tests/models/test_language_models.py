"""HFCausalLM: special tokens, embedding resize, LoRA, freezing, forward."""
import pytest
import torch

from mmgrounding.models.language_models import (GLAMM_SPECIAL_TOKENS,
                                                HFCausalLM)
from mmgrounding.models.utils import position_ids_from_mask
from mmgrounding.registry import MODELS
from mmgrounding.testing import (GLAMM_LORA, build_tiny_llama,
                                 build_tiny_tokenizer, tiny_llama_cfg)


@pytest.fixture(scope='module')
def bare_tok_dir(tmp_path_factory):
    """A tokenizer without the model tokens (the LM must add them)."""
    path = str(tmp_path_factory.mktemp('bare_tok'))
    build_tiny_tokenizer(path, include_model_tokens=False)
    return path


@pytest.fixture(scope='module')
def full_tok_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('full_tok'))
    build_tiny_tokenizer(path, include_model_tokens=True)
    return path


def test_special_tokens_added_once_in_order(bare_tok_dir):
    from transformers import AutoTokenizer
    base = len(AutoTokenizer.from_pretrained(bare_tok_dir))
    lm = MODELS.build(tiny_llama_cfg(bare_tok_dir))
    assert isinstance(lm, HFCausalLM)
    # official GLaMM order first (<im_start> = base ... </p> = base + 6),
    # our <image> placeholder last
    assert list(lm.token_ids) == list(GLAMM_SPECIAL_TOKENS)
    assert list(lm.token_ids.values()) == list(
        range(base, base + len(GLAMM_SPECIAL_TOKENS)))
    assert len(lm.tokenizer) == base + len(GLAMM_SPECIAL_TOKENS)
    assert lm.vocab_size == len(lm.tokenizer)
    assert lm.model.get_output_embeddings().weight.shape[0] == lm.vocab_size
    # the ids are what the tokenizer produces for the names
    ids = lm.tokenizer(
        '<p> circle </p> [SEG]', add_special_tokens=False).input_ids
    assert ids[0] == lm.token_ids['<p>']
    assert ids[2] == lm.token_ids['</p>']
    assert ids[3] == lm.token_ids['[SEG]']
    # new rows (input and output) start at the mean of the old rows
    for weight in (lm.model.get_input_embeddings().weight,
                   lm.model.get_output_embeddings().weight):
        mean = weight[:base].mean(0)
        assert torch.allclose(weight[base:], mean.expand(8, -1), atol=1e-6)


def test_special_tokens_already_present_are_not_added_again(full_tok_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(full_tok_dir)
    lm = MODELS.build(tiny_llama_cfg(full_tok_dir))
    assert len(lm.tokenizer) == len(tok)
    assert lm.vocab_size == len(tok)
    for name, tok_id in lm.token_ids.items():
        assert tok.convert_tokens_to_ids(name) == tok_id


def test_lora_trainable_parameter_count(bare_tok_dir):
    lm = MODELS.build(tiny_llama_cfg(bare_tok_dir, lora=GLAMM_LORA))
    cfg = lm.model.config
    hidden, heads, kv = (cfg.hidden_size, cfg.num_attention_heads,
                         cfg.num_key_value_heads)
    head_dim = hidden // heads
    r = GLAMM_LORA['r']
    # q_proj: hidden -> heads*head_dim, v_proj: hidden -> kv*head_dim;
    # LoRA adds A [r, in] and B [out, r] to each.
    per_layer = r * (hidden + heads * head_dim) + r * (hidden + kv * head_dim)
    expected_lora = cfg.num_hidden_layers * per_layer
    assert lm.lora_parameter_count() == expected_lora
    trainable = sum(p.numel() for p in lm.parameters() if p.requires_grad)
    full_rows = 2 * lm.vocab_size * hidden  # embed_tokens + lm_head
    assert trainable == expected_lora + full_rows
    frozen = [n for n, p in lm.named_parameters() if not p.requires_grad]
    assert frozen and all('lora_' not in n for n in frozen)
    assert all('embed_tokens' not in n and 'lm_head' not in n for n in frozen)


def test_without_lora_only_named_modules_train(bare_tok_dir):
    lm = MODELS.build(tiny_llama_cfg(bare_tok_dir))
    names = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert names and all(
        ('embed_tokens' in n or 'lm_head' in n) for n in names)
    cfg = tiny_llama_cfg(bare_tok_dir)
    cfg['trainable'] = 'all'
    lm_all = MODELS.build(cfg)
    assert all(p.requires_grad for p in lm_all.parameters())


def test_forward_loss_and_left_padding_positions(bare_tok_dir):
    lm = MODELS.build(tiny_llama_cfg(bare_tok_dir)).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    embeds = lm.embed(ids)
    out = lm(
        inputs_embeds=embeds, attention_mask=torch.ones_like(ids), labels=ids)
    assert out.logits.shape == (1, 4, lm.vocab_size)
    assert torch.isfinite(out.loss)
    # the same prompt left-padded by two gives the same last logits
    pad = lm.pad_token_id
    padded = torch.tensor([[pad, pad, 5, 6, 7, 8]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    out_p = lm(inputs_embeds=lm.embed(padded), attention_mask=mask)
    assert torch.allclose(out_p.logits[0, -1], out.logits[0, -1], atol=1e-5)
    assert position_ids_from_mask(mask).tolist() == [[
        1, 1, 0, 1, 2, 3
    ]]


def test_merge_lora_keeps_outputs(bare_tok_dir):
    lm = MODELS.build(tiny_llama_cfg(bare_tok_dir, lora=GLAMM_LORA)).eval()
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if 'lora_B' in name:
                p.normal_(0, 0.5)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    before = lm(inputs_embeds=lm.embed(ids)).logits
    lm.merge_lora()
    assert lm.lora_parameter_count() == 0
    after = lm(inputs_embeds=lm.embed(ids)).logits
    assert torch.allclose(before, after, atol=1e-4)
    assert all(('embed_tokens' in n or 'lm_head' in n)
               for n, p in lm.named_parameters() if p.requires_grad)


def test_from_pretrained_dir_offline(tmp_path, bare_tok_dir):
    saved = build_tiny_llama(str(tmp_path), tokenizer_dir=bare_tok_dir)
    lm = HFCausalLM(
        pretrained_model_name_or_path=str(tmp_path),
        tokenizer=dict(pretrained_model_name_or_path=str(tmp_path)))
    base = saved.config.vocab_size
    assert lm.vocab_size == base + len(GLAMM_SPECIAL_TOKENS)
    assert torch.equal(lm.model.get_input_embeddings().weight[:base],
                       saved.get_input_embeddings().weight)


def test_bad_arguments_raise(bare_tok_dir):
    tok = dict(pretrained_model_name_or_path=bare_tok_dir)
    with pytest.raises(ValueError, match='exactly one'):
        HFCausalLM(tokenizer=tok)
    with pytest.raises(ValueError, match='tokenizer'):
        HFCausalLM(config=dict(type='LlamaConfig'))
    with pytest.raises(ValueError, match='Unknown transformers config type'):
        HFCausalLM(config=dict(type='NoSuchConfig'), tokenizer=tok)
