"""The lean generation loop (issue 16) against plain references.

References written here, independent of ``generate``:
- ``old_loop``: the previous implementation's arithmetic (DynamicCache,
  every layer's states requested, the last one read), batched and left
  padded; greedy tokens and states must be bit-identical to it.
- ``first_stop``: the previous stop-string rule, a full re-decode of the row.
"""
import pytest
import torch
from transformers import DynamicCache

from mmgrounding.models.utils import generate, position_ids_from_mask
from mmgrounding.registry import MODELS
from mmgrounding.testing import (GLAMM_LORA, build_tiny_tokenizer,
                                 make_glamm_batch, tiny_glamm_cfg,
                                 tiny_llama_cfg)

PROMPT_LENGTHS = (5, 11, 2, 8)
STEPS = 10


@pytest.fixture(scope='module')
def tok_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('tok'))
    build_tiny_tokenizer(path)
    return path


@pytest.fixture(scope='module')
def lm(tok_dir):
    torch.manual_seed(0)
    cfg = tiny_llama_cfg(tok_dir)
    cfg['lora'] = GLAMM_LORA  # the decoder hook must see through peft
    model = MODELS.build(cfg).eval()
    with torch.no_grad():
        model.model.get_output_embeddings().weight.mul_(20)
    return model


@pytest.fixture(scope='module')
def batch(lm):
    g = torch.Generator().manual_seed(1)
    rows = [torch.randint(4, 120, (n, ), generator=g) for n in PROMPT_LENGTHS]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), lm.pad_token_id)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, length - len(r):] = r
        mask[i, length - len(r):] = 1
    return lm.embed(ids).detach(), mask


@torch.no_grad()
def old_loop(lm, embeds, mask, steps):
    """Greedy, KV cache, output_hidden_states=True, no eos: tokens [B, T],
    'preceding' states [B, T, C], 'self' states [B, T, C]."""
    cache, cur, pos = DynamicCache(), embeds, position_ids_from_mask(mask)
    nxt = pos[:, -1] + 1
    tokens, states = [], []
    for _ in range(steps + 1):
        out = lm(inputs_embeds=cur, attention_mask=mask, position_ids=pos,
                 past_key_values=cache, use_cache=True,
                 output_hidden_states=True, logits_to_keep=1)
        states.append(out.hidden_states[-1][:, -1])
        tokens.append(out.logits[:, -1].float().argmax(-1))
        cur = lm.embed(tokens[-1][:, None]).to(embeds.dtype)
        mask = torch.cat([mask, mask.new_ones(len(mask), 1)], 1)
        pos, nxt = nxt[:, None], nxt + 1
    seq = torch.stack(tokens[:steps], 1)
    st = torch.stack(states, 1)
    return seq, st[:, :steps], st[:, 1:]


def frequent_token(seq):
    values, counts = seq.flatten().unique(return_counts=True)
    return int(values[counts.argmax()])


@pytest.mark.parametrize('source', ['preceding', 'self'])
def test_tokens_and_states_bit_identical_to_the_old_loop(lm, batch, source):
    embeds, mask = batch
    seq, preceding, own = old_loop(lm, embeds, mask, STEPS)
    ref_states = preceding if source == 'preceding' else own
    every = generate(lm, embeds, mask, max_new_tokens=STEPS,
                     hidden_source=source)
    assert torch.equal(every.sequences, seq)
    assert torch.equal(every.hidden_states, ref_states)
    tok = frequent_token(seq)
    lean = generate(lm, embeds, mask, max_new_tokens=STEPS,
                    hidden_source=source, state_token_ids=(tok, ))
    assert lean.hidden_states is None
    assert torch.equal(lean.sequences, seq)
    hits = 0
    for b in range(len(seq)):
        want = ref_states[b][seq[b] == tok]
        hits += len(want)
        assert torch.equal(lean.token_states[b], want)
    assert hits >= 2  # the check is not vacuous
    none = generate(lm, embeds, mask, max_new_tokens=STEPS,
                    state_token_ids=())
    assert torch.equal(none.sequences, seq)
    assert all(s.shape == (0, lm.hidden_size) for s in none.token_states)


def test_states_of_finished_rows_are_not_kept(lm, batch):
    embeds, mask = batch
    seq, preceding, _ = old_loop(lm, embeds, mask, STEPS)
    stop = int(seq[0, 1])  # row 0 ends at step 1
    tok = frequent_token(seq)
    out = generate(lm, embeds, mask, max_new_tokens=STEPS,
                   eos_token_id=stop, state_token_ids=(tok, stop))
    for b in range(len(seq)):
        n = int(out.lengths[b])
        valid = seq[b, :n]
        want = preceding[b, :n][(valid == tok) | (valid == stop)]
        assert torch.equal(out.token_states[b], want)


def test_every_step_runs_the_decoder_once_and_the_head_on_one_row(lm, batch):
    embeds, mask = batch
    decoder = lm.model.get_decoder()
    head = lm.model.get_output_embeddings()
    calls, head_rows = [], []
    inner = decoder.forward

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return inner(*args, **kwargs)

    decoder.forward = spy
    hook = head.register_forward_pre_hook(
        lambda m, args: head_rows.append(args[0].shape[1]))
    try:
        generate(lm, embeds, mask, max_new_tokens=4, hidden_source='self',
                 state_token_ids=(-1, ))
    finally:
        del decoder.forward
        hook.remove()
    # 4 steps, no tail forward: no kept token needs its own state
    assert len(calls) == 4
    assert head_rows == [1, 1, 1, 1]  # the LM head reads the last row only
    assert not any(c.get('output_hidden_states') for c in calls)
    assert calls[0]['inputs_embeds'].shape[1] == embeds.shape[1]
    assert calls[0]['attention_mask'].dim() == 2  # HF builds the prefill's
    # decode step j: a ready 4D mask over the L + j + 1 cached keys, True on
    # each row's own tokens (its prompt without the left padding, then j + 1
    # generated ones)
    length = embeds.shape[1]
    for j, call in enumerate(calls[1:]):
        got = call['attention_mask']
        assert got.dtype == torch.bool
        assert got.shape == (len(PROMPT_LENGTHS), 1, 1, length + j + 1)
        for b, n in enumerate(PROMPT_LENGTHS):
            want = [False] * (length - n) + [True] * (n + j + 1)
            assert got[b, 0, 0].tolist() == want
        assert call['position_ids'][:, 0].tolist() == [
            n + j for n in PROMPT_LENGTHS]


def test_last_hidden_state_equals_the_last_of_all_layers(lm, batch):
    embeds, mask = batch
    full = lm(inputs_embeds=embeds, attention_mask=mask,
              output_hidden_states=True)
    lean = lm(inputs_embeds=embeds, attention_mask=mask,
              output_last_hidden_state=True)
    assert lean.hidden_states is None
    assert torch.equal(lean['last_hidden_state'], full.hidden_states[-1])
    assert torch.equal(lean.logits, full.logits)
    # the hook stores nothing unless asked
    lm(inputs_embeds=embeds, attention_mask=mask)
    assert 'state' not in lm._last_hidden_box


@pytest.mark.parametrize('source', ['preceding', 'self'])
def test_static_cache_gives_the_same_tokens(lm, batch, source):
    embeds, mask = batch
    dyn = generate(lm, embeds, mask, max_new_tokens=STEPS,
                   hidden_source=source)
    sta = generate(lm, embeds, mask, max_new_tokens=STEPS,
                   hidden_source=source, cache_implementation='static')
    assert torch.equal(dyn.sequences, sta.sequences)
    assert torch.allclose(dyn.hidden_states, sta.hidden_states, atol=1e-5)
    with pytest.raises(ValueError, match='static'):
        generate(lm, embeds, mask, compile=True)


def first_stop(tokenizer, row, stops):
    """Old rule: first t with a stop string in decode(row[:t + 1])."""
    for t in range(len(row)):
        text = tokenizer.decode(row[:t + 1].tolist(),
                                skip_special_tokens=False)
        if any(s in text for s in stops):
            return t + 1
    return None


class CountingTokenizer:
    """Forwards to a tokenizer, recording how many ids each decode reads."""

    def __init__(self, tokenizer):
        self.tokenizer, self.sizes = tokenizer, []

    def batch_decode(self, rows, **kwargs):
        self.sizes.extend(len(r) for r in rows)
        return self.tokenizer.batch_decode(rows, **kwargs)

    def decode(self, ids, **kwargs):
        self.sizes.append(len(ids))
        return self.tokenizer.decode(ids, **kwargs)


def test_incremental_stop_strings_match_a_full_redecode(lm, batch):
    embeds, mask = batch
    steps = 40
    free = generate(lm, embeds, mask, max_new_tokens=steps,
                    state_token_ids=())
    tokenizer = lm.tokenizer
    words = tokenizer.convert_ids_to_tokens(free.sequences[1].tolist())
    # strings spanning token boundaries, one absent, one late
    cases = [(words[3][-2:] + ' ' + words[4][:2], ),
             (words[2] + ' ' + words[3] + ' ' + words[4], ),
             ('zq', ), ('zq', words[-1])]
    stopped = 0
    for stops in cases:
        counting = CountingTokenizer(tokenizer)
        out = generate(lm, embeds, mask, max_new_tokens=steps,
                       stop_strings=stops, tokenizer=counting,
                       state_token_ids=())
        window = 4 * max(len(s) for s in stops) + 4
        assert max(counting.sizes) <= window
        if stops[0] == 'zq':  # never stops: a full re-decode reads 40
            assert window < steps
        for b in range(len(free.sequences)):
            want = first_stop(tokenizer, free.sequences[b], stops)
            assert bool(out.finished[b]) == (want is not None)
            assert int(out.lengths[b]) == (want or steps)
            stopped += want is not None
    assert stopped >= 3


def test_glamm_generate_batch_matches_the_old_loop(tok_dir):
    torch.manual_seed(0)
    model = MODELS.build(tiny_glamm_cfg(tok_dir)).eval()
    with torch.no_grad():
        model.language_model.model.get_output_embeddings().weight.mul_(20)
    inputs, samples = make_glamm_batch(model, [
        'segment the red circle .', 'describe the picture in detail'
        ' please .', 'hi'
    ])
    ids, amask = model._repack_left(
        model._rows(inputs, range(len(samples))))
    embeds = model.embed_inputs(ids, inputs, samples).detach()
    seq, preceding, _ = old_loop(model.language_model, embeds, amask, 8)
    tok = frequent_token(seq)
    out = model.generate_batch(inputs, samples, eos_token_id=None,
                               max_new_tokens=8, state_token_ids=(tok, ))
    assert torch.equal(out.sequences, seq)
    for b in range(len(samples)):
        assert torch.equal(out.token_states[b], preceding[b][seq[b] == tok])


class SyncCounter:
    """Counts host syncs (``tolist``, ``item``, ``bool``, ``nonzero``,
    boolean-mask indexing) made directly by code in ``lmms/base.py`` and
    the SAM grounding head."""
    files = ('lmms/base.py', 'grounding_heads/sam_grounding_head.py')
    names = ('tolist', 'item', '__bool__', 'nonzero', '__getitem__')

    def __init__(self):
        self.calls = []
        self.saved = {}

    def __enter__(self):
        import sys
        for name in self.names:
            inner = getattr(torch.Tensor, name)
            # what torch.Tensor itself defines (None: inherited from the C
            # base class, restored by deleting the spy)
            self.saved[name] = torch.Tensor.__dict__.get(name)

            def spy(t, *args, _inner=inner, _name=name, **kwargs):
                caller = sys._getframe(1).f_code.co_filename
                if caller.endswith(self.files) and (
                        _name != '__getitem__' or self._bool_index(args)):
                    self.calls.append(_name)
                return _inner(t, *args, **kwargs)

            setattr(torch.Tensor, name, spy)
        return self

    @staticmethod
    def _bool_index(args):
        index = args[0] if args else None
        items = index if isinstance(index, tuple) else (index, )
        return any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool
            for i in items)

    def __exit__(self, *exc):
        for name, own in self.saved.items():
            if own is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, own)


@pytest.mark.slow  # ~12 s: a fresh interpreter (keeps make test-fast < 5 min)
def test_loss_makes_one_host_sync_isolated():
    """Runs the sync count in its own interpreter: spying on ``torch.Tensor``
    methods leaves state behind that changed later tests' results."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, MMG_SYNC_COUNT='1')
    out = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         f'{__file__}::test_loss_makes_one_host_sync'],
        env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert '1 passed' in out.stdout, out.stdout[-2000:]


def test_loss_makes_one_host_sync(tok_dir):
    import os
    if os.environ.get('MMG_SYNC_COUNT') != '1':
        pytest.skip('run in its own interpreter by the _isolated test')
    torch.manual_seed(0)
    model = MODELS.build(tiny_glamm_cfg(tok_dir)).train()
    inputs, samples = make_glamm_batch(
        model, ['segment it .', 'describe <bbox> .', 'hi'],
        ['it is [SEG] .', '<p> a </p> [SEG] and <p> b </p> [SEG] .',
         'hello .'],
        ori_sizes=[(48, 64), (80, 40), (30, 30)],
        region_boxes=[torch.zeros(0, 4), torch.tensor([[4., 4., 40., 30.]]),
                      torch.zeros(0, 4)])
    with SyncCounter() as counter:
        losses = model.loss(inputs, samples)
    assert counter.calls == ['tolist']
    assert torch.isfinite(sum(losses.values()))
    # the single sync still catches a wrong count, naming the sample
    bad = dict(inputs, input_ids=inputs['input_ids'].clone())
    row = bad['input_ids'][1]
    row[row == model.bbox_token_id] = model.image_token_id
    with pytest.raises(ValueError, match=r'sample 1 .* <image> tokens but'):
        model.loss(bad, samples)


def test_lm_loss_runs_the_head_on_labelled_rows_only(lm, batch):
    """loss_and_hidden = HF's ``forward(labels=...)`` loss, with the LM head
    reading only the positions whose next label counts."""
    embeds, mask = batch
    embeds = embeds.clone().requires_grad_(True)
    labels = torch.full(mask.shape, -100)
    # rows end at the right (left padding): label the last 3, 1, 2, 4
    # positions of the rows; a label at position 0 is never predicted
    for b, n in enumerate((3, 1, 2, 4)):
        labels[b, -n:] = torch.arange(5, 5 + n)
    labels[2, 0] = 7
    head_rows = []
    hook = lm.model.get_output_embeddings().register_forward_pre_hook(
        lambda m, args: head_rows.append(tuple(args[0].shape[:-1])))
    try:
        loss, hidden = lm.loss_and_hidden(embeds, mask, labels)
    finally:
        hook.remove()
    assert head_rows == [(3 + 1 + 2 + 4, )]
    ref = lm(inputs_embeds=embeds, attention_mask=mask, labels=labels,
             output_last_hidden_state=True)
    # equal up to the order of the float sums (the mean and the LM-head
    # weight gradient add the same terms, without the ignored rows' zeros)
    assert torch.allclose(loss, ref.loss, rtol=1e-6, atol=0)
    assert torch.equal(hidden, ref['last_hidden_state'])
    grad = torch.autograd.grad(loss, embeds)[0]
    grad_ref = torch.autograd.grad(ref.loss, embeds)[0]
    assert torch.allclose(grad, grad_ref, rtol=1e-5, atol=1e-8)
    assert grad[:, -5:].abs().sum() > 0
    # the count the caller already has gives the same result
    again, _ = lm.loss_and_hidden(embeds, mask, labels, num_labelled=10)
    assert torch.equal(again, loss)
