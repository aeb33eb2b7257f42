"""Batched autoregressive generation over input embeddings.

Multimodal LMs start generation from embeddings (image features already
scattered into the prompt), so ``transformers``' ``generate`` (which starts
from ids) does not give us what we need: the hidden state behind every
generated token, which GLaMM turns into a mask prompt for each ``[SEG]``.

:func:`generate` decodes a whole left-padded batch with a KV cache.
:func:`reference_generate` reproduces the official GLaMM loop (batch 1, no
cache, the whole sequence, vision tower included, recomputed every step); it
exists to check and to benchmark :func:`generate` against.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch

from .hf import position_ids_from_mask

HIDDEN_SOURCES = ('preceding', 'self')


@dataclass
class GenerationOutput:
    """Result of :func:`generate`.

    Attributes:
        sequences: LongTensor[B, T] generated ids; after a row finishes its
            remaining entries are ``pad_token_id``.
        lengths: LongTensor[B] valid generated tokens per row (the eos token,
            when produced, included).
        hidden_states: Tensor[B, T, C] last-layer (final-norm) hidden state
            chosen per generated token by ``hidden_source``: ``'preceding'``
            = the state whose logits produced the token (official GLaMM
            ``[SEG]`` convention), ``'self'`` = the state at the token's own
            position. None when :func:`generate` kept only the states of
            ``state_token_ids`` (then see ``token_states``).
        finished: BoolTensor[B] rows that hit eos or a stop string.
        token_states: per row, Tensor[M_i, C] the states (same
            ``hidden_source`` rule) of its valid generated tokens whose id is
            in ``state_token_ids``, in generation order; None when every
            state was kept (``hidden_states``).
    """
    sequences: torch.Tensor
    lengths: torch.Tensor
    hidden_states: Optional[torch.Tensor]
    finished: torch.Tensor
    token_states: Optional[List[torch.Tensor]] = None


def _as_id_list(ids: Union[None, int, Sequence[int]]) -> list:
    if ids is None:
        return []
    if isinstance(ids, int):
        return [ids]
    return [int(i) for i in ids]


def select_next_token(
        logits: torch.Tensor,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Pick one token per row from logits [B, V] (greedy or nucleus sample).

    Temperatures below 1e-4 fall back to greedy (as the official loops do).
    """
    if not do_sample or temperature < 1e-4:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        cum = sorted_probs.cumsum(-1)
        # drop a token when the mass before it already exceeds top_p;
        # the most likely token always survives.
        drop = (cum - sorted_probs) > top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    probs = probs / probs.sum(-1, keepdim=True)
    # multinomial runs on CPU generators only for CPU tensors; sample where
    # the generator lives and move back.
    if generator is not None and generator.device != probs.device:
        sample = torch.multinomial(
            probs.to(generator.device), 1, generator=generator)
        return sample.squeeze(-1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class StopStringWatcher:
    """Incremental stop-string check: decodes a short window, not the row.

    A row stops at the first step at which ``stop in decode(row)`` holds
    (``decode`` = ``tokenizer.decode(..., skip_special_tokens=False)`` of the
    row's generated tokens). An occurrence that is new at step t overlaps the
    text of token t, so it lies inside the decode of the last
    ``window`` tokens, with ``window`` = 4 x (longest stop string) + 4 tokens
    (a character spans at most 4 byte-fallback tokens; the spare tokens
    absorb the first token's lost leading space). Cost per step: one decode of
    ``window`` tokens per unfinished row, instead of the whole row.
    """

    def __init__(self, tokenizer, stop_strings: Sequence[str],
                 batch: int) -> None:
        self.tokenizer = tokenizer
        self.stop_strings = tuple(stop_strings)
        self.window = 4 * max(len(s) for s in self.stop_strings) + 4
        self.rows: List[List[int]] = [[] for _ in range(batch)]

    def update(self, tokens: List[int], active: List[bool]) -> List[bool]:
        """Append ``tokens[b]`` to each ``active`` row; which rows now hold a
        stop string."""
        idx = [b for b, on in enumerate(active) if on]
        for b in idx:
            self.rows[b].append(tokens[b])
        texts = self.tokenizer.batch_decode(
            [self.rows[b][-self.window:] for b in idx],
            skip_special_tokens=False)
        hits = [False] * len(active)
        for b, text in zip(idx, texts):
            hits[b] = any(s in text for s in self.stop_strings)
        return hits


def _gather_token_states(kept: List[Tuple[torch.Tensor, torch.Tensor]],
                         batch: int, width: int, device, dtype
                         ) -> List[torch.Tensor]:
    """Steps' (rows [K], states [K, C]) -> per row [M_b, C] in step order."""
    if not kept:
        return [torch.zeros((0, width), device=device, dtype=dtype)
                for _ in range(batch)]
    rows = torch.cat([r for r, _ in kept])
    states = torch.cat([s for _, s in kept])
    order = torch.sort(rows, stable=True).indices  # row-major, steps kept
    counts = torch.bincount(rows, minlength=batch).tolist()
    return list(states[order].split(counts, 0))


def _forward_last(language_model, embeds, mask, pos, cache, cache_pos,
                  use_cache: bool):
    """One LM call -> (logits of the last position [B, V] fp32, its
    last-layer state [B, C]) (:meth:`HFCausalLM.forward_last`)."""
    return language_model.forward_last(embeds, mask, pos, cache, use_cache,
                                       cache_pos)


def _compiled_forward(language_model):
    """``torch.compile`` of :func:`_forward_last`, made once per language
    model (shapes are fixed per batch size with the static cache, so later
    calls reuse the compiled graph)."""
    fn = language_model.__dict__.get('_mmg_compiled_forward')
    if fn is None:
        fn = torch.compile(_forward_last, dynamic=False)
        language_model.__dict__['_mmg_compiled_forward'] = fn
    return fn


class _StepInputs:
    """Attention masks and positions of every step, made once per call.

    Decoding step ``j`` (feeding the j-th generated token) reads slices and
    at most one small op, never a ``cat`` that grows with the sequence:

    - positions: ``[B, T + 1]`` (prompt length per row + j), column j;
    - the decode attention mask as the 4D boolean mask HF itself would
      build from the 2D padding mask (True = attend; HF passes a 4D mask
      through unchanged, so its mask builder does not run per step):
      dynamic cache ``valid[:, None, None, :L + j + 1]`` (a view; every
      cached key is in the past), static cache ``valid & (slot <= L + j)``
      over the fixed width. Without any padding the dynamic cache gets None,
      as HF's builder returns then.
    The prefill keeps the 2D mask (HF builds its causal mask once).

    Args:
        prompt_mask: LongTensor[B, L] 0/1, left padded.
        steps: generated tokens fed at most (max_new_tokens, + 1 for the
            'self' tail step).
        static: the static cache (fixed width L + steps).
        padded: whether ``prompt_mask`` has a zero (host value).
    """

    def __init__(self, prompt_mask: torch.Tensor, steps: int, static: bool,
                 padded: bool) -> None:
        batch, length = prompt_mask.shape
        device = prompt_mask.device
        self.length, self.static, self.padded = length, static, padded
        self.width = length + steps
        #: [B, L + steps] 2D mask: the prompt's, then ones
        self.mask2d = torch.cat(
            [prompt_mask, prompt_mask.new_ones(batch, steps)], 1)
        self.valid = self.mask2d.bool()[:, None, None, :]  # [B, 1, 1, W]
        last = position_ids_from_mask(prompt_mask)[:, -1:]
        self.positions = last + 1 + torch.arange(steps, device=device)
        self.slots = torch.arange(self.width, device=device)

    def prefill_mask(self) -> torch.Tensor:
        return self.mask2d if self.static else self.mask2d[:, :self.length]

    def decode(self, j: int) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
        """(attention mask, position ids [B, 1]) of decoding step ``j``."""
        pos = self.positions[:, j:j + 1]
        if self.static:
            return self.valid & (self.slots <= self.length + j), pos
        if not self.padded:
            return None, pos
        return self.valid[..., :self.length + j + 1], pos


@torch.no_grad()
def generate(language_model,
             inputs_embeds: torch.Tensor,
             attention_mask: torch.Tensor,
             max_new_tokens: int = 32,
             do_sample: bool = False,
             temperature: float = 1.0,
             top_p: float = 1.0,
             generator: Optional[torch.Generator] = None,
             eos_token_id: Union[None, int, Sequence[int]] = None,
             pad_token_id: int = 0,
             stop_strings: Sequence[str] = (),
             tokenizer=None,
             hidden_source: str = 'preceding',
             suppress_token_ids: Sequence[int] = (),
             use_cache: bool = True,
             state_token_ids: Optional[Sequence[int]] = None,
             cache_implementation: str = 'dynamic',
             compile: bool = False) -> GenerationOutput:
    """Generate a batch of continuations of left-padded prompt embeddings.

    Every forward returns logits of the last position only
    and the last layer's state, never all layers'
    (:meth:`HFCausalLM.forward_last`: the decoder, then the LM head on the
    last row, prefill included); the masks and positions of every step are
    made once (:class:`_StepInputs`).

    Args:
        language_model: an :class:`HFCausalLM` (anything with ``embed(ids)``
            and its ``forward`` signature).
        inputs_embeds: Tensor[B, L, C] prompt embeddings, LEFT padded.
        attention_mask: [B, L], 1 on tokens; the last column must be all 1.
        max_new_tokens: generation length limit.
        do_sample, temperature, top_p, generator: sampling controls; greedy
            when ``do_sample`` is False. A seeded ``generator`` makes sampling
            reproducible.
        eos_token_id: id(s) that end a row (kept in the output).
        pad_token_id: filler after a row has finished.
        stop_strings: a row also ends once its decoded text contains one of
            these (needs ``tokenizer``; checked incrementally, see
            :class:`StopStringWatcher`).
        hidden_source: ``'preceding'`` or ``'self'`` (see
            :class:`GenerationOutput`).
        suppress_token_ids: ids never generated (e.g. the ``<image>``
            placeholder, whose embedding row is never trained).
        use_cache: decode incrementally with a KV cache; False recomputes the
            whole sequence every step (same result, slower).
        state_token_ids: None keeps every generated token's state
            (``hidden_states`` [B, T, C], for checks); ids (e.g. the seg
            token) keep only those tokens' states (``token_states``), copied
            out only at the steps that produce them; ``()`` keeps none.
        cache_implementation: ``'dynamic'`` (``DynamicCache``) or
            ``'static'`` (``StaticCache`` preallocated to L +
            max_new_tokens + 1, with a fixed-width attention mask so that
            every decode step has the same shapes).
        compile: ``torch.compile`` the decode step (needs ``'static'``; for
            GPUs, where it removes the per-step launch overhead).

    Returns:
        :class:`GenerationOutput`.
    """
    from transformers import DynamicCache, StaticCache
    if hidden_source not in HIDDEN_SOURCES:
        raise ValueError(f'hidden_source must be one of {HIDDEN_SOURCES}, '
                         f'got {hidden_source!r}')
    if inputs_embeds.dim() != 3 or attention_mask.shape != \
            inputs_embeds.shape[:2]:
        raise ValueError(
            f'generate: inputs_embeds {tuple(inputs_embeds.shape)} and '
            f'attention_mask {tuple(attention_mask.shape)} must be [B, L, C] '
            'and [B, L]')
    if stop_strings and tokenizer is None:
        raise ValueError('generate: stop_strings need a tokenizer')
    if max_new_tokens < 1:
        raise ValueError(f'generate: max_new_tokens must be >= 1, got '
                         f'{max_new_tokens}')
    if cache_implementation not in ('dynamic', 'static'):
        raise ValueError("generate: cache_implementation must be 'dynamic' "
                         f"or 'static', got {cache_implementation!r}")
    static = use_cache and cache_implementation == 'static'
    if compile and not static:
        raise ValueError("generate: compile=True needs use_cache=True and "
                         "cache_implementation='static'")
    eos_ids = _as_id_list(eos_token_id)
    keep_all = state_token_ids is None
    keep_ids = torch.tensor(
        _as_id_list(None if keep_all else list(state_token_ids)),
        dtype=torch.long,
        device=inputs_embeds.device)
    batch, prompt_len = inputs_embeds.shape[:2]
    device = inputs_embeds.device

    prompt_mask = attention_mask.long()
    # the step's one host sync before the loop: left padding?, any padding?
    last_ok, padded = torch.stack(
        [prompt_mask[:, -1].all(), (prompt_mask == 0).any()]).tolist()
    if not last_ok:
        raise ValueError('generate: prompts must be LEFT padded (the last '
                         'column of attention_mask must be all ones)')
    steps = None
    if use_cache:
        steps = _StepInputs(prompt_mask, max_new_tokens + 1, static, padded)
    state = dict(
        mask=prompt_mask if steps is None else steps.prefill_mask(),
        embeds=inputs_embeds.to(language_model.compute_dtype),
        pos=position_ids_from_mask(prompt_mask))
    full = [state['embeds']]  # no-cache mode: the whole sequence so far
    cache = None
    if static:
        cache = StaticCache(
            config=language_model.model.config, max_cache_len=steps.width)
    elif use_cache:
        cache = DynamicCache()
    cache_pos = torch.arange(prompt_len, device=device) if static else None
    fed = 0  # tokens fed after the prompt

    def feed(token: torch.Tensor, valid: torch.Tensor) -> None:
        """Append ``token`` [B] as the next input (rows not ``valid`` are
        finished: they feed id 0, whatever ``pad_token_id`` is)."""
        nonlocal cache_pos, fed
        token = token.masked_fill(~valid, 0)
        new = language_model.embed(token[:, None]).to(
            state['embeds'].dtype)
        if use_cache:
            state['embeds'] = new
            state['mask'], state['pos'] = steps.decode(fed)
            if static:
                cache_pos = steps.slots[prompt_len + fed:prompt_len + fed +
                                        1]
            if compile:  # fresh inputs, not views at a moving offset
                state['pos'], cache_pos = state['pos'].clone(), \
                    cache_pos.clone()
        else:
            full.append(new)
            state['embeds'] = torch.cat(full, dim=1)
            state['mask'] = torch.cat(
                [prompt_mask, prompt_mask.new_ones(batch, fed + 1)], 1)
            state['pos'] = position_ids_from_mask(state['mask'])
        fed += 1

    def step():
        # the prefill is never compiled (its length changes every call)
        fn = _compiled_forward(language_model) if compile and fed else \
            _forward_last
        return fn(language_model, state['embeds'], state['mask'],
                  state['pos'], cache, cache_pos, use_cache)

    watcher = StopStringWatcher(tokenizer, stop_strings, batch) \
        if stop_strings else None
    tokens, hiddens, valids = [], [], []
    kept: List[Tuple[torch.Tensor, torch.Tensor]] = []  # (rows, states)
    pending = None  # 'self': rows whose last token's state is the next one
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)
    suppress = torch.tensor(
        _as_id_list(list(suppress_token_ids)), dtype=torch.long,
        device=device)
    for i in range(max_new_tokens):
        if i > 0:
            feed(tokens[-1], valids[-1])
        logits, hidden = step()
        if pending is not None:
            kept.append((pending, hidden[pending]))
            pending = None
        if suppress.numel():
            logits.index_fill_(1, suppress, float('-inf'))
        token = select_next_token(logits, do_sample, temperature, top_p,
                                  generator).masked_fill(
                                      finished, pad_token_id)
        valid = ~finished
        lengths += valid.long()
        valids.append(valid)
        tokens.append(token)
        if keep_all:
            hiddens.append(hidden)
        if eos.numel():
            finished = finished | torch.isin(token, eos)
        # one host sync per step: done?, any state to keep?, the tokens
        keep = torch.isin(token, keep_ids) & valid if keep_ids.numel() \
            else None
        flags = [finished.all()] + ([keep.any()] if keep is not None else [])
        host = torch.stack(flags).tolist()
        if watcher is not None:
            both = torch.stack([token, (~finished).long()]).tolist()
            hits = watcher.update(both[0], [bool(v) for v in both[1]])
            if any(hits):
                finished = finished | torch.tensor(hits, device=device)
                host[0] = bool(finished.all())
        if keep is not None and host[1]:
            rows = keep.nonzero().squeeze(1)
            if hidden_source == 'preceding':
                kept.append((rows, hidden[rows]))
            else:
                pending = rows
        if host[0]:
            break

    sequences = torch.stack(tokens, 1)
    states = torch.stack(hiddens, 1) if keep_all else None
    if hidden_source == 'self' and (keep_all or pending is not None):
        # the state AT token t is the one that produced token t + 1; the last
        # token's own state needs one more forward.
        feed(tokens[-1], valids[-1])
        _, tail = step()
        if keep_all:
            states = torch.cat([states[:, 1:], tail[:, None]], dim=1)
        else:
            kept.append((pending, tail[pending]))
    token_states = None
    if not keep_all:
        width = language_model.hidden_size
        token_states = _gather_token_states(
            kept, batch, width, device,
            kept[0][1].dtype if kept else getattr(
                language_model, 'compute_dtype', inputs_embeds.dtype))
    return GenerationOutput(
        sequences=sequences,
        lengths=lengths,
        hidden_states=states,
        finished=finished,
        token_states=token_states)


@torch.no_grad()
def reference_generate(
    build_embeds: Callable[[torch.Tensor], torch.Tensor],
    language_model,
    input_ids: torch.Tensor,
    max_new_tokens: int = 32,
    eos_token_id: Union[None, int, Sequence[int]] = None,
    suppress_token_ids: Sequence[int] = ()
) -> GenerationOutput:
    """The official GLaMM decoding loop, for checks and benchmarks only.

    Batch 1, greedy, no KV cache: every step rebuilds the embeddings of the
    whole sequence with ``build_embeds`` (which, like the official
    ``prepare_inputs_labels_for_multimodal``, runs the vision tower again)
    and runs the LM over all positions with full logits.

    Args:
        build_embeds: ids [1, L] -> embeddings [1, L, C].
        language_model: an :class:`HFCausalLM`.
        input_ids: LongTensor[1, L] prompt without padding.

    Returns:
        :class:`GenerationOutput` with ``'preceding'`` hidden states.
    """
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError('reference_generate: the official loop is batch 1; '
                         f'got input_ids {tuple(input_ids.shape)}')
    eos_ids = _as_id_list(eos_token_id)
    ids = input_ids
    tokens, hiddens = [], []
    finished = False
    for _ in range(max_new_tokens):
        embeds = build_embeds(ids)
        mask = torch.ones(ids.shape, dtype=torch.long, device=ids.device)
        out = language_model(
            inputs_embeds=embeds,
            attention_mask=mask,
            use_cache=False,
            output_hidden_states=True)  # as the official loop
        logits = out.logits[:, -1].float()
        if len(suppress_token_ids):
            logits[:, list(suppress_token_ids)] = float('-inf')
        token = logits.argmax(-1)
        tokens.append(token)
        hiddens.append(out.hidden_states[-1][:, -1])
        ids = torch.cat([ids, token[:, None]], dim=1)
        if int(token) in eos_ids:
            finished = True
            break
    device = input_ids.device
    return GenerationOutput(
        sequences=torch.stack(tokens, 1),
        lengths=torch.tensor([len(tokens)], device=device),
        hidden_states=torch.stack(hiddens, 1),
        finished=torch.tensor([finished], device=device))
