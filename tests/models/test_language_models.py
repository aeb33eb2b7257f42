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


# ------------------------------------------- bf16 LM, fp32 trainable weights
def _bf16_lm(tok_dir, **kwargs):
    cfg = tiny_llama_cfg(tok_dir, lora=GLAMM_LORA)
    cfg.update(torch_dtype='bfloat16', **kwargs)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _lm_batch(lm, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, lm.vocab_size, (2, 12), generator=gen)
    mask = torch.ones_like(ids)
    return ids, mask


def test_bf16_lm_keeps_fp32_trainable_and_bf16_frozen(bare_tok_dir):
    lm = _bf16_lm(bare_tok_dir)
    trained = {n: p.dtype for n, p in lm.named_parameters() if p.requires_grad}
    frozen = {n: p.dtype for n, p in lm.named_parameters()
              if not p.requires_grad}
    assert any('embed_tokens' in n for n in trained)
    assert any('lm_head' in n for n in trained)
    assert any('lora_A' in n for n in trained)
    assert set(trained.values()) == {torch.float32}
    assert set(frozen.values()) == {torch.bfloat16}
    assert lm.compute_dtype == torch.bfloat16
    # trainable_dtype=None (the old behaviour): the trained embedding and
    # LM-head rows stay bf16 (peft alone upcasts its adapters)
    old = _bf16_lm(bare_tok_dir, trainable_dtype=None)
    assert old.model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert old.model.get_output_embeddings().weight.dtype == torch.bfloat16


def _adamw_step_changes(lm, lr):
    """One AdamW step; returns (old, new, grad) of the embedding weight."""
    ids, mask = _lm_batch(lm)
    weight = lm.model.get_input_embeddings().weight
    old = weight.detach().float().clone()
    opt = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad],
                            lr=lr, weight_decay=0.)
    out = lm(lm.embed(ids), attention_mask=mask, labels=ids)
    out.loss.backward()
    grad = weight.grad.detach().float().clone()
    opt.step()
    return old, weight.detach().float(), grad


def test_small_adamw_update_reaches_the_bf16_lm_embeddings(bare_tok_dir):
    """A first AdamW step moves each weight by lr * sign(grad) (m / sqrt(v)
    = g / |g|). With |w| ~ 0.02 (init std) and lr = 2e-6, that is a 1e-4
    relative update: below bf16's resolution (2^-8 ~ 4e-3), so a bf16
    weight would not move at all; the fp32 master moves by exactly lr."""
    lr = 2e-6
    lm = _bf16_lm(bare_tok_dir)
    old, new, grad = _adamw_step_changes(lm, lr)
    # elements with a real gradient (>> eps) whose update is <= 1e-4 relative
    sel = (grad.abs() > 1e-5) & (old.abs() >= lr / 1e-4)
    assert sel.sum() > 100
    step = (new - old)[sel]
    torch.testing.assert_close(step, -lr * grad[sel].sign(), rtol=1e-2,
                               atol=1e-9)
    # the same step with bf16 trainable weights is lost entirely
    old_b, new_b, grad_b = _adamw_step_changes(
        _bf16_lm(bare_tok_dir, trainable_dtype=None), lr)
    sel_b = (grad_b.abs() > 1e-5) & (old_b.abs() >= lr / 1e-4)
    assert sel_b.sum() > 100
    assert torch.equal(old_b[sel_b], new_b[sel_b])


def test_bf16_lm_forward_with_and_without_autocast(bare_tok_dir):
    lm = _bf16_lm(bare_tok_dir)
    ids, mask = _lm_batch(lm)
    out = lm(lm.embed(ids), attention_mask=mask, labels=ids)
    assert out.logits.dtype == torch.float32  # fp32 head on bf16 states
    assert torch.isfinite(out.loss)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        amp = lm(lm.embed(ids), attention_mask=mask, labels=ids)
    assert torch.isfinite(amp.loss)
    # both compute the same model: bf16-level agreement
    assert abs(amp.loss.item() - out.loss.item()) < 0.05 * out.loss.item()
    amp.loss.backward()
    assert lm.model.get_input_embeddings().weight.grad.dtype == torch.float32


def test_tiny_glamm_trains_a_step_with_a_bf16_lm(bare_tok_dir):
    """One optimiser step of the tiny GLaMM with its LM in bf16, plain and
    under bf16 autocast (what AmpOptimWrapper(dtype='bfloat16') does on a
    GPU; AmpOptimWrapper itself refuses CPU)."""
    from mmengine.optim import OptimWrapper

    from mmgrounding.testing import make_glamm_batch, tiny_glamm_cfg
    for autocast in (False, True):
        cfg = tiny_glamm_cfg(bare_tok_dir, lora=GLAMM_LORA)
        cfg['language_model']['torch_dtype'] = 'bfloat16'
        torch.manual_seed(0)
        model = MODELS.build(cfg)
        model.train()
        batch = make_glamm_batch(
            model, ['Where is <bbox>?', 'Segment it.'],
            ['<p> it </p> [SEG].', 'Sure, [SEG].'],
            region_boxes=[torch.tensor([[4., 4., 40., 40.]]),
                          torch.zeros(0, 4)])
        params = {
            n: p
            for n, p in model.named_parameters() if p.requires_grad
        }
        assert {p.dtype for p in params.values()} == {torch.float32}
        before = {n: p.detach().clone() for n, p in params.items()}
        wrapper = OptimWrapper(
            torch.optim.AdamW(params.values(), lr=1e-4, weight_decay=0.))
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            losses = model.loss(*batch)
        loss = sum(losses.values())
        assert torch.isfinite(loss), losses
        wrapper.backward(loss)
        nonzero = [
            n for n, p in params.items()
            if p.grad is not None and bool(p.grad.abs().sum() > 0)
        ]
        wrapper.step()
        # lora_A has zero gradient at step 1 (lora_B starts at 0)
        assert len(nonzero) > 0.7 * len(params)
        for name in ('language_model.model.base_model.model.lm_head.weight',
                     'seg_projector.layers.0.weight'):
            assert name in nonzero
        for name in nonzero:
            assert not torch.equal(params[name], before[name]), name
