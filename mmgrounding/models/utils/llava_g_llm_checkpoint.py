"""The LLM side of the official LLaVA-G release -> mmgrounding.

The release (``Haozhangcx/llava_grounding_gd_vp``, an HF LLaVA-Llama
directory; ``shared/reference/official_releases.md`` §4.1-4.2) holds, next
to ``seg_model.model.*`` and ``interactive_model.model.*`` (converted by
:mod:`.openseed_checkpoint` and
:mod:`..prompt_encoders.semantic_sam_checkpoint`):

- the Vicuna-7B LM: ``model.embed_tokens.weight`` [32003, 4096],
  ``model.layers.N.*``, ``model.norm.weight``, ``lm_head.weight`` (untied);
  rows 32000/32001/32002 are ``<g_s>``/``<g_e>``/``<seg>``;
- ``model.mm_projector.{weight,bias}``: one ``Linear(1024, 4096)``;
- ``model.vision_tower.vision_tower.vision_model.*`` (CLIP-L/14-224; not
  converted here: our ``HFVisionEncoder`` loads CLIP from its own directory).

The official visual-prompt placeholder is the text ``"% "``: the embedding
at token id **1273** (presumably ``▁%``) is overwritten by
``obj_projector(obj_feat)``. Our models use a real ``<obj>`` token and a real
``<image>`` token, added after the three official ones (ids 32003, 32004 on
Vicuna; ``HFCausalLM.special_tokens = ('<g_s>', '<g_e>', '<seg>', '<obj>',
'<image>')``). :func:`extend_vocab_rows` builds the two new rows:

- ``<obj>`` = row 1273 (input embedding AND lm_head): the placeholder's
  input row is overwritten anyway, so what matters is the output row; a copy
  of the ``▁%`` row keeps the released next-token distribution over the old
  ids unchanged, and ``torch.argmax`` returns the first of tied maxima, so
  greedy decoding still emits 1273 where the release did;
- ``<image>`` = mean of the ORIGINAL 32000 rows (not of the 32003): the same
  initialisation ``HFCausalLM`` and the official code give a new token,
  computed on the base Vicuna vocabulary so the trained ``<g_s>/<g_e>/<seg>``
  rows do not pull it; its input row is replaced by image features, its
  output row gives a neutral, near-average logit.

:func:`write_llava_g_llm` writes a plain local HF ``LlamaForCausalLM``
directory (safetensors shards + ``config.json`` + tokenizer) for
``HFCausalLM(pretrained_model_name_or_path=DIR)``;
:func:`convert_llava_g_projector` gives the ``projector.layers.0.*`` keys of
our ``LLaVAGrounding``. The obj projector
(``interactive_model.model.obj_projector.*``) is part of our
``SemanticSAMPromptEncoder`` and comes with the prompt-encoder conversion.
"""
import copy
import json
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Mapping, Optional

import torch

#: Tokens the release added to Vicuna's 32000, in their id order.
OFFICIAL_ADDED_TOKENS = ('<g_s>', '<g_e>', '<seg>')
#: Tokens we add after them (``llava_g_7b_cfg`` / ``llava_g_tiny.py``).
OUR_ADDED_TOKENS = ('<obj>', '<image>')
#: Token id whose embedding the release overwrites with the obj feature.
OFFICIAL_OBJ_TOKEN_ID = 1273

#: Official LM keys (HF ``LlamaForCausalLM`` names).
_LM_KEY = re.compile(r'^(model\.(embed_tokens|layers|norm)\.|lm_head\.)')
_IGNORED = re.compile(r'.*\.rotary_emb\.inv_freq$')
_VOCAB_KEYS = ('model.embed_tokens.weight', 'lm_head.weight')
#: Official projector key -> ours (``MLPProjector(num_layers=1)``).
PROJECTOR_KEYS = (('model.mm_projector.weight', 'layers.0.weight'),
                  ('model.mm_projector.bias', 'layers.0.bias'))
#: ``config.json`` entries of a LLaVA-Llama config that a ``LlamaConfig``
#: keeps (everything else, ``mm_*`` etc., is LLaVA's).
LLAMA_CONFIG_KEYS = ('hidden_size', 'intermediate_size', 'num_hidden_layers',
                     'num_attention_heads', 'num_key_value_heads',
                     'hidden_act', 'max_position_embeddings',
                     'initializer_range', 'rms_norm_eps', 'rope_theta',
                     'rope_scaling', 'attention_bias', 'bos_token_id',
                     'eos_token_id', 'pad_token_id', 'tie_word_embeddings')


@torch.no_grad()
def extend_vocab_rows(
        weight: torch.Tensor,
        base_vocab: int,
        obj_source_id: int = OFFICIAL_OBJ_TOKEN_ID) -> torch.Tensor:
    """Released vocabulary rows [V, C] -> ours [V + 2, C].

    Args:
        weight: ``embed_tokens`` or ``lm_head`` weight of the release
            (V = base_vocab + 3).
        base_vocab: size of the vocabulary before the official tokens
            (32000 for Vicuna); the ``<image>`` row is the float32 mean of
            rows ``[0, base_vocab)``, cast back.
        obj_source_id: row copied for ``<obj>`` (1273, the official
            placeholder).

    Returns:
        rows ``0..V-1`` unchanged, then ``<obj>``, then ``<image>``.
    """
    rows = weight.shape[0]
    if rows != base_vocab + len(OFFICIAL_ADDED_TOKENS):
        raise ValueError(f'vocabulary weight has {rows} rows; expected '
                         f'{base_vocab} + {len(OFFICIAL_ADDED_TOKENS)} '
                         f'({", ".join(OFFICIAL_ADDED_TOKENS)})')
    if not 0 <= obj_source_id < base_vocab:
        raise ValueError(f'obj_source_id={obj_source_id} is not a row of the '
                         f'base vocabulary [0, {base_vocab})')
    obj = weight[obj_source_id:obj_source_id + 1]
    image = weight[:base_vocab].float().mean(0, keepdim=True).to(weight.dtype)
    return torch.cat([weight, obj, image], 0)


def convert_llava_g_projector(
        official: Mapping[str, torch.Tensor],
        dst_prefix: str = 'projector.') -> 'OrderedDict[str, torch.Tensor]':
    """``model.mm_projector.{weight,bias}`` -> ``{dst_prefix}layers.0.*``.

    Raises ``KeyError`` when the release lacks one of them, ``ValueError``
    when they are not one Linear (a 2-D weight and a matching bias).
    """
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for src, dst in PROJECTOR_KEYS:
        if src not in official:
            raise KeyError(f'{src} is not in the release (LLaVA-G stores one '
                           'Linear mm_projector)')
        out[dst_prefix + dst] = official[src]
    weight, bias = (official[k] for k, _ in PROJECTOR_KEYS)
    if weight.dim() != 2 or tuple(bias.shape) != (weight.shape[0], ):
        raise ValueError(f'mm_projector weight {tuple(weight.shape)} / bias '
                         f'{tuple(bias.shape)} is not one Linear')
    return out


def llava_g_lm_state_dict(
        official: Mapping[str, torch.Tensor],
        base_vocab: int,
        obj_source_id: int = OFFICIAL_OBJ_TOKEN_ID,
        dtype: Optional[torch.dtype] = None
) -> 'OrderedDict[str, torch.Tensor]':
    """The ``LlamaForCausalLM`` state dict of the release, vocab extended.

    Keeps ``model.{embed_tokens,layers,norm}.*`` and ``lm_head.*`` (same
    names in the release and in HF), drops ``rotary_emb.inv_freq`` buffers,
    extends both vocabulary matrices with :func:`extend_vocab_rows`.
    """
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in official.items():
        if not _LM_KEY.match(key) or _IGNORED.match(key):
            continue
        if key in _VOCAB_KEYS:
            value = extend_vocab_rows(value, base_vocab, obj_source_id)
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        out[key] = value.contiguous()
    if 'model.embed_tokens.weight' not in out:
        raise KeyError('model.embed_tokens.weight is not in the release')
    return out


def llama_config_from_release(config: Mapping,
                              vocab_size: int,
                              dtype: Optional[torch.dtype] = None):
    """``transformers.LlamaConfig`` of the release's LM (vocab ours)."""
    from transformers import LlamaConfig
    kwargs = {
        k: copy.deepcopy(config[k])
        for k in LLAMA_CONFIG_KEYS if k in config
    }
    kwargs['vocab_size'] = vocab_size
    kwargs.setdefault('tie_word_embeddings', False)
    cfg = LlamaConfig(**kwargs)
    cfg.architectures = ['LlamaForCausalLM']
    torch_dtype = dtype or config.get('torch_dtype')
    if torch_dtype is not None:
        cfg.torch_dtype = str(torch_dtype).replace('torch.', '')
    return cfg


def extend_tokenizer(tokenizer, official_rows: int) -> Dict[str, int]:
    """Add the official tokens where absent, then ``<obj>``, ``<image>``.

    Checks that the official three land on ``official_rows - 3 ..
    official_rows - 1`` (the rows of the release) and ours right after;
    returns token -> id. ``tokenizer`` is modified in place.
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in OFFICIAL_ADDED_TOKENS if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    tokenizer.add_tokens(
        [t for t in OUR_ADDED_TOKENS if t not in tokenizer.get_vocab()],
        special_tokens=True)
    ids = {
        t: tokenizer.convert_tokens_to_ids(t)
        for t in OFFICIAL_ADDED_TOKENS + OUR_ADDED_TOKENS
    }
    first = official_rows - len(OFFICIAL_ADDED_TOKENS)
    want = {
        t: first + i
        for i, t in enumerate(OFFICIAL_ADDED_TOKENS + OUR_ADDED_TOKENS)
    }
    if ids != want or len(tokenizer) != official_rows + len(OUR_ADDED_TOKENS):
        raise ValueError(f'tokenizer ids {ids} (size {len(tokenizer)}) do '
                         f'not match the release vocabulary ({official_rows} '
                         f'rows): expected {want}')
    return ids


def write_llava_g_llm(official: Mapping[str, torch.Tensor],
                      release_config: Mapping,
                      tokenizer,
                      dst: str,
                      obj_source_id: int = OFFICIAL_OBJ_TOKEN_ID,
                      dtype: Optional[torch.dtype] = None,
                      max_shard_size: str = '5GB') -> Dict[str, int]:
    """Write a local HF LLaMA directory of the release's LM to ``dst``.

    Args:
        official: the release's tensors (all shards).
        release_config: its ``config.json`` (LLaVA-Llama; the Llama fields
            are kept, :data:`LLAMA_CONFIG_KEYS`).
        tokenizer: the release's (or base Vicuna's) tokenizer; the official
            tokens are added if absent, then ``<obj>``, ``<image>``; saved to
            ``dst``.
        obj_source_id: row the ``<obj>`` row copies (official 1273).
        dtype: cast floating tensors (None keeps the release's).
        max_shard_size: safetensors shard size (HF's split; 7B fp16 -> 3
            shards, an index is written when there is more than one).

    Returns:
        token -> id of the five added tokens; raises ``ValueError`` (before
        anything is written) when the tokenizer does not line up.
    """
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file
    official_rows = official['model.embed_tokens.weight'].shape[0]
    base_vocab = official_rows - len(OFFICIAL_ADDED_TOKENS)
    token_ids = extend_tokenizer(tokenizer, official_rows)
    state = llava_g_lm_state_dict(official, base_vocab, obj_source_id, dtype)
    cfg = llama_config_from_release(release_config,
                                    official_rows + len(OUR_ADDED_TOKENS),
                                    dtype)
    if cfg.tie_word_embeddings:
        state.pop('lm_head.weight', None)
    elif 'lm_head.weight' not in state:
        raise KeyError('lm_head.weight is not in the release and '
                       'tie_word_embeddings is false')
    os.makedirs(dst, exist_ok=True)
    split = split_torch_state_dict_into_shards(state,
                                               max_shard_size=max_shard_size)
    for filename, keys in split.filename_to_tensors.items():
        save_file({k: state[k]
                   for k in keys},
                  osp.join(dst, filename),
                  metadata={'format': 'pt'})
    if split.is_sharded:
        with open(osp.join(dst, 'model.safetensors.index.json'), 'w') as f:
            json.dump(dict(metadata=split.metadata,
                           weight_map=split.tensor_to_filename),
                      f,
                      indent=2)
    cfg.save_pretrained(dst)
    tokenizer.save_pretrained(dst)
    return token_ids


__all__ = [
    'OFFICIAL_ADDED_TOKENS', 'OUR_ADDED_TOKENS', 'OFFICIAL_OBJ_TOKEN_ID',
    'PROJECTOR_KEYS', 'LLAMA_CONFIG_KEYS', 'extend_vocab_rows',
    'convert_llava_g_projector', 'llava_g_lm_state_dict',
    'llama_config_from_release', 'extend_tokenizer', 'write_llava_g_llm'
]
