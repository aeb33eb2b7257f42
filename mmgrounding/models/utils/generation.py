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
from typing import Callable, Optional, Sequence, Union

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
            position.
        finished: BoolTensor[B] rows that hit eos or a stop string.
    """
    sequences: torch.Tensor
    lengths: torch.Tensor
    hidden_states: torch.Tensor
    finished: torch.Tensor


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


def _hit_stop_string(tokenizer, ids: torch.Tensor,
                     stop_strings: Sequence[str]) -> bool:
    text = tokenizer.decode(ids.tolist(), skip_special_tokens=False)
    return any(s in text for s in stop_strings)


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
             use_cache: bool = True) -> GenerationOutput:
    """Generate a batch of continuations of left-padded prompt embeddings.

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
            these (needs ``tokenizer``).
        hidden_source: ``'preceding'`` or ``'self'`` (see
            :class:`GenerationOutput`).
        suppress_token_ids: ids never generated (e.g. the ``<image>``
            placeholder, whose embedding row is never trained).
        use_cache: decode incrementally with a ``DynamicCache``; False
            recomputes the whole sequence every step (same result, slower).

    Returns:
        :class:`GenerationOutput`.
    """
    from transformers import DynamicCache
    if hidden_source not in HIDDEN_SOURCES:
        raise ValueError(f'hidden_source must be one of {HIDDEN_SOURCES}, '
                         f'got {hidden_source!r}')
    if inputs_embeds.dim() != 3 or attention_mask.shape != \
            inputs_embeds.shape[:2]:
        raise ValueError(
            f'generate: inputs_embeds {tuple(inputs_embeds.shape)} and '
            f'attention_mask {tuple(attention_mask.shape)} must be [B, L, C] '
            'and [B, L]')
    if not bool(attention_mask[:, -1].all()):
        raise ValueError('generate: prompts must be LEFT padded (the last '
                         'column of attention_mask must be all ones)')
    if stop_strings and tokenizer is None:
        raise ValueError('generate: stop_strings need a tokenizer')
    if max_new_tokens < 1:
        raise ValueError(f'generate: max_new_tokens must be >= 1, got '
                         f'{max_new_tokens}')
    eos_ids = _as_id_list(eos_token_id)
    batch, device = inputs_embeds.shape[0], inputs_embeds.device

    state = dict(
        mask=attention_mask.long(),
        embeds=inputs_embeds,  # what the next forward reads
        full=inputs_embeds,  # whole sequence (no-cache mode)
        pos=position_ids_from_mask(attention_mask.long()))
    next_pos = state['pos'][:, -1] + 1
    cache = DynamicCache() if use_cache else None

    def feed(token: torch.Tensor, valid: torch.Tensor) -> None:
        """Append ``token`` [B] as the next input (rows not ``valid`` are
        finished: they feed id 0, whatever ``pad_token_id`` is)."""
        nonlocal next_pos
        token = torch.where(valid, token, torch.zeros_like(token))
        new = language_model.embed(token[:, None]).to(inputs_embeds.dtype)
        state['mask'] = torch.cat(
            [state['mask'], state['mask'].new_ones(batch, 1)], dim=1)
        if use_cache:
            state['embeds'], state['pos'] = new, next_pos[:, None]
        else:
            state['full'] = torch.cat([state['full'], new], dim=1)
            state['embeds'] = state['full']
            state['pos'] = position_ids_from_mask(state['mask'])
        next_pos = next_pos + 1

    def step():
        out = language_model(
            inputs_embeds=state['embeds'],
            attention_mask=state['mask'],
            position_ids=state['pos'],
            past_key_values=cache,
            use_cache=use_cache,
            output_hidden_states=True,
            logits_to_keep=1)
        return out.logits[:, -1].float(), out.hidden_states[-1][:, -1]

    tokens, hiddens, valids = [], [], []
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)
    for i in range(max_new_tokens):
        if i > 0:
            feed(tokens[-1], valids[-1])
        logits, hidden = step()
        if len(suppress_token_ids):
            logits[:, list(suppress_token_ids)] = float('-inf')
        token = select_next_token(logits, do_sample, temperature, top_p,
                                  generator)
        token = torch.where(finished, torch.full_like(token, pad_token_id),
                            token)
        lengths += (~finished).long()
        valids.append(~finished)
        tokens.append(token)
        hiddens.append(hidden)
        if eos.numel():
            finished |= torch.isin(token, eos)
        if stop_strings:
            seq = torch.stack(tokens, 1)
            for b in range(batch):
                if not finished[b] and _hit_stop_string(
                        tokenizer, seq[b, :lengths[b]], stop_strings):
                    finished[b] = True
        if bool(finished.all()):
            break

    sequences = torch.stack(tokens, 1)
    states = torch.stack(hiddens, 1)
    if hidden_source == 'self':
        # the state AT token t is the one that produced token t + 1; the last
        # token's own state needs one more forward.
        feed(tokens[-1], valids[-1])
        _, tail = step()
        states = torch.cat([states[:, 1:], tail[:, None]], dim=1)
    return GenerationOutput(
        sequences=sequences,
        lengths=lengths,
        hidden_states=states,
        finished=finished)


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
            output_hidden_states=True)
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
