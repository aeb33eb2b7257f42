"""Batched KV-cache generation vs no cache, one-by-one and the official loop.
"""
import pytest
import torch

from mmgrounding.models.utils import (generate, reference_generate,
                                      select_next_token)
from mmgrounding.registry import MODELS
from mmgrounding.testing import build_tiny_tokenizer, tiny_llama_cfg

PROMPT_LENGTHS = (5, 11, 2, 8)


@pytest.fixture(scope='module')
def lm(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('tok'))
    build_tiny_tokenizer(path)
    torch.manual_seed(0)
    model = MODELS.build(tiny_llama_cfg(path)).eval()
    with torch.no_grad():  # sharper logits: fewer near-ties in greedy
        model.model.get_output_embeddings().weight.mul_(20)
    return model


def left_pad(lm, rows):
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), lm.pad_token_id)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, length - len(r):] = r
        mask[i, length - len(r):] = 1
    return ids, mask


@pytest.fixture(scope='module')
def prompts():
    g = torch.Generator().manual_seed(1)
    return [torch.randint(4, 120, (n, ), generator=g) for n in PROMPT_LENGTHS]


def test_cache_equals_recompute_and_batch_equals_single(lm, prompts):
    ids, mask = left_pad(lm, prompts)
    embeds = lm.embed(ids)
    cached = generate(lm, embeds, mask, max_new_tokens=12)
    full = generate(lm, embeds, mask, max_new_tokens=12, use_cache=False)
    assert cached.sequences.shape == (4, 12)
    assert torch.equal(cached.sequences, full.sequences)
    assert torch.allclose(cached.hidden_states, full.hidden_states, atol=1e-4)
    for i, row in enumerate(prompts):
        one = generate(
            lm,
            lm.embed(row[None]),
            torch.ones(1, len(row)),
            max_new_tokens=12)
        assert torch.equal(one.sequences[0], cached.sequences[i])
        assert torch.allclose(
            one.hidden_states[0], cached.hidden_states[i], atol=1e-4)


def test_hidden_states_are_the_ones_behind_each_token(lm, prompts):
    ids, mask = left_pad(lm, prompts[:2])
    out = generate(lm, lm.embed(ids), mask, max_new_tokens=6)
    head = lm.model.get_output_embeddings()
    # 'preceding': the LM head on the stored state reproduces the token
    assert torch.equal(head(out.hidden_states).argmax(-1), out.sequences)
    own = generate(
        lm, lm.embed(ids), mask, max_new_tokens=6, hidden_source='self')
    assert torch.allclose(
        own.hidden_states[:, :-1], out.hidden_states[:, 1:], atol=1e-5)
    # the last token's own state equals a full forward over the sequence
    seq = torch.cat([ids, out.sequences], 1)
    full_mask = torch.cat([mask, torch.ones_like(out.sequences)], 1)
    ref = lm(
        inputs_embeds=lm.embed(seq),
        attention_mask=full_mask,
        output_hidden_states=True).hidden_states[-1][:, -1]
    assert torch.allclose(own.hidden_states[:, -1], ref, atol=1e-4)


def test_eos_finishes_rows_and_pads(lm, prompts):
    ids, mask = left_pad(lm, prompts)
    free = generate(lm, lm.embed(ids), mask, max_new_tokens=8)
    stop_id = int(free.sequences[0, 2])  # row 0 produces it at step 2
    out = generate(
        lm,
        lm.embed(ids),
        mask,
        max_new_tokens=8,
        eos_token_id=stop_id,
        pad_token_id=-1)
    assert bool(out.finished[0])
    assert int(out.lengths[0]) == 3
    assert torch.all(out.sequences[0, 3:] == -1)
    for i in range(len(prompts)):
        n = int(out.lengths[i])
        assert torch.equal(out.sequences[i, :n], free.sequences[i, :n])


def test_stop_strings(lm, prompts):
    ids, mask = left_pad(lm, prompts[:1])
    free = generate(lm, lm.embed(ids), mask, max_new_tokens=8)
    word = lm.tokenizer.convert_ids_to_tokens(int(free.sequences[0, 1]))
    out = generate(
        lm,
        lm.embed(ids),
        mask,
        max_new_tokens=8,
        stop_strings=(word, ),
        tokenizer=lm.tokenizer)
    assert bool(out.finished[0])
    first = [
        lm.tokenizer.convert_ids_to_tokens(int(t)) for t in free.sequences[0]
    ].index(word)
    assert int(out.lengths[0]) == first + 1


def test_sampling_is_seeded_and_top_p_small_is_greedy(lm, prompts):
    ids, mask = left_pad(lm, prompts)
    embeds = lm.embed(ids)
    runs = [
        generate(
            lm,
            embeds,
            mask,
            max_new_tokens=6,
            do_sample=True,
            temperature=1.5,
            generator=torch.Generator().manual_seed(3)) for _ in range(2)
    ]
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    greedy = generate(lm, embeds, mask, max_new_tokens=6)
    nucleus = generate(
        lm,
        embeds,
        mask,
        max_new_tokens=6,
        do_sample=True,
        top_p=1e-6,
        generator=torch.Generator().manual_seed(3))
    assert torch.equal(greedy.sequences, nucleus.sequences)
    logits = torch.tensor([[0., 5., 1.]])
    assert select_next_token(logits).item() == 1


def test_suppressed_tokens_are_never_generated(lm, prompts):
    ids, mask = left_pad(lm, prompts)
    free = generate(lm, lm.embed(ids), mask, max_new_tokens=6)
    banned = sorted(set(free.sequences.flatten().tolist()))
    out = generate(
        lm, lm.embed(ids), mask, max_new_tokens=6, suppress_token_ids=banned)
    assert not torch.isin(out.sequences, torch.tensor(banned)).any()


def test_right_padding_is_rejected(lm):
    ids = torch.tensor([[5, 6, 0]])
    with pytest.raises(ValueError, match='LEFT padded'):
        generate(lm, lm.embed(ids), torch.tensor([[1, 1, 0]]))


def test_reference_loop_matches_cached_generation(lm, prompts):
    calls = []

    def build_embeds(cur_ids):
        calls.append(cur_ids.shape[1])
        return lm.embed(cur_ids)

    ref = reference_generate(
        build_embeds, lm, prompts[1][None], max_new_tokens=7)
    ours = generate(
        lm,
        lm.embed(prompts[1][None]),
        torch.ones(1, len(prompts[1])),
        max_new_tokens=7)
    assert torch.equal(ref.sequences, ours.sequences)
    assert torch.allclose(ref.hidden_states, ours.hidden_states, atol=1e-4)
    # full recompute: the whole (growing) sequence is rebuilt every step
    assert calls == list(range(len(prompts[1]), len(prompts[1]) + 7))
    with pytest.raises(ValueError, match='batch 1'):
        reference_generate(build_embeds, lm, torch.zeros(2, 3).long())
