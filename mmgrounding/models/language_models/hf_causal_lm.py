"""A Hugging Face causal language model with its tokenizer, special tokens and
optional LoRA, as one registered module.

Why one module: the tokenizer decides the vocabulary size, the special tokens
decide which embedding rows are new, and LoRA decides which weights train; the
three must agree, so they are built together and checked once.
"""
import copy
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule

from mmgrounding.registry import MODELS
from mmgrounding.utils.hf_loading import (from_pretrained_local,
                                          load_pretrained_model)
from mmgrounding.structures.markup import GLAMM_SPECIAL_TOKENS
from ..utils.hf import (build_hf_config, masked_rows,
                        position_ids_from_mask)

#: GLaMM's added tokens, in the official order of
#: ``setup_tokenizer_and_special_tokens`` (``<im_start>`` = 32000 ...
#: ``</p>`` = 32006 on the Vicuna vocabulary), followed by our ``<image>``
#: placeholder (the official code uses the -200 sentinel instead), so that the
#: released checkpoints' token rows keep their ids.


def _resolve_dtype(
        dtype: Union[None, str, torch.dtype]) -> Optional[torch.dtype]:
    """``'bfloat16'`` / ``'torch.bfloat16'`` / ``torch.bfloat16`` -> dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == 'auto':
        return None
    name = dtype.replace('torch.', '')
    if not isinstance(getattr(torch, name, None), torch.dtype):
        raise ValueError(f'HFCausalLM: unknown torch_dtype {dtype!r}')
    return getattr(torch, name)


def _cast_input_to_weight(module: torch.nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: cast the first input to the module's weight dtype."""
    if args and torch.is_tensor(args[0]) and \
            args[0].dtype != module.weight.dtype:
        return (args[0].to(module.weight.dtype), ) + tuple(args[1:])
    return None


def _keep_last_hidden(module: torch.nn.Module, args: tuple, output) -> None:
    """Forward hook of the decoder: store its ``last_hidden_state`` in the
    owner's box while the box is switched on (module-level: picklable)."""
    box = module._mmg_last_hidden_owner
    if box.get('on'):
        box['state'] = output[0] if isinstance(output, tuple) \
            else output.last_hidden_state


@MODELS.register_module()
class HFCausalLM(BaseModule):
    """Causal LM + tokenizer + special tokens + LoRA.

    Args:
        pretrained_model_name_or_path: local directory of a HF causal LM
            (loaded offline). Exclusive with ``config``.
        config: dict describing a randomly initialised model, e.g.
            ``dict(type='LlamaConfig', hidden_size=128, ...)``. When
            ``vocab_size`` is absent the tokenizer's base size is used.
        tokenizer: kwargs of ``AutoTokenizer.from_pretrained``; needs
            ``pretrained_model_name_or_path`` (a local directory).
        special_tokens: tokens added (as special tokens, once, by name) to
            the tokenizer; their ids are read back into ``self.token_ids``.
            New embedding rows (input and output) start at the mean of the
            old rows, as in LLaVA/GLaMM.
        lora: ``peft.LoraConfig`` kwargs (``r``, ``lora_alpha``,
            ``lora_dropout``, ``target_modules`` ...) or None for no LoRA.
        trainable: which non-LoRA parameters train: ``'all'`` or a sequence
            of substrings of parameter names (default: the full input
            embedding and LM head, as the official GLaMM). Every other
            parameter of the LM is frozen.
        gradient_checkpointing: enable HF gradient checkpointing
            (non-reentrant, so frozen embeddings need no input grads).
        torch_dtype: dtype of the LM weights (``'bfloat16'`` ...); the
            frozen weights keep it and the forward computes in it.
        trainable_dtype: dtype of the parameters that train (default
            ``'float32'``: with a bf16 LM the embedding/LM-head rows and LoRA
            keep fp32 weights, so AdamW updates below bf16's resolution,
            ~4e-3 relative, are not lost). None keeps ``torch_dtype``.
            Inputs are cast at the boundaries (embeddings -> decoder, decoder
            -> LM head), so the forward works with and without autocast.
        attn_implementation: HF attention implementation (``'sdpa'``,
            ``'eager'``); None keeps the library default.
        init_cfg: mmengine init config (unused by default; the HF model
            initialises itself).
    """

    def __init__(self,
                 pretrained_model_name_or_path: Optional[str] = None,
                 config: Optional[dict] = None,
                 tokenizer: Optional[dict] = None,
                 special_tokens: Sequence[str] = GLAMM_SPECIAL_TOKENS,
                 lora: Optional[dict] = None,
                 trainable: Union[str,
                                  Sequence[str]] = ('embed_tokens', 'lm_head'),
                 gradient_checkpointing: bool = False,
                 torch_dtype: Union[None, str, torch.dtype] = None,
                 trainable_dtype: Union[None, str,
                                        torch.dtype] = 'float32',
                 attn_implementation: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        from transformers import AutoModelForCausalLM, AutoTokenizer
        if (pretrained_model_name_or_path is None) == (config is None):
            raise ValueError('HFCausalLM: give exactly one of '
                             '`pretrained_model_name_or_path` and `config`.')
        if not tokenizer or 'pretrained_model_name_or_path' not in tokenizer:
            raise ValueError('HFCausalLM: `tokenizer` must be a dict with '
                             '`pretrained_model_name_or_path` (a local dir).')
        tokenizer = dict(tokenizer)
        self.tokenizer = from_pretrained_local(
            AutoTokenizer, tokenizer.pop('pretrained_model_name_or_path'),
            'HFCausalLM.tokenizer.pretrained_model_name_or_path', **tokenizer)
        if self.tokenizer.pad_token is None:
            # Official LLaVA/GLaMM convention: pad with unk.
            self.tokenizer.pad_token = self.tokenizer.unk_token
        base_vocab = len(self.tokenizer)

        dtype = _resolve_dtype(torch_dtype)
        extra = {}
        if dtype is not None:
            extra['dtype'] = dtype
        if attn_implementation is not None:
            extra['attn_implementation'] = attn_implementation
        if config is not None:
            config = copy.deepcopy(config)
            config.setdefault('vocab_size', base_vocab)
            hf_config = build_hf_config(config)
            self.model = AutoModelForCausalLM.from_config(hf_config, **extra)
        else:
            self.model = load_pretrained_model(
                AutoModelForCausalLM, pretrained_model_name_or_path,
                'HFCausalLM.pretrained_model_name_or_path', **extra)
        self.trainable_dtype = _resolve_dtype(trainable_dtype)

        self.special_tokens = tuple(special_tokens)
        self.token_ids = self._add_special_tokens(self.special_tokens)

        for param in self.model.parameters():
            param.requires_grad_(False)
        self.lora_cfg = copy.deepcopy(lora)
        if lora is not None:
            self._wrap_lora(lora)
        self.trainable = trainable
        self._set_trainable(trainable)
        self._cast_trainable()
        self._cast_lm_head_input()
        self._capture_last_hidden()
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=dict(use_reentrant=False))

    # ------------------------------------------------------------------ build
    def _add_special_tokens(self, tokens: Sequence[str]) -> Dict[str, int]:
        """Add missing ``tokens`` once, resize embeddings, return name->id."""
        missing = [t for t in tokens if t not in self.tokenizer.get_vocab()]
        if missing:
            self.tokenizer.add_tokens(missing, special_tokens=True)
        token_ids = {}
        for tok in tokens:
            ids = self.tokenizer.convert_tokens_to_ids([tok])
            if len(ids) != 1 or ids[0] is None or \
                    ids[0] == self.tokenizer.unk_token_id:
                raise RuntimeError(f'HFCausalLM: special token {tok!r} did '
                                   'not get its own id')
            token_ids[tok] = int(ids[0])
        if len(set(token_ids.values())) != len(token_ids):
            raise RuntimeError(f'HFCausalLM: special tokens share ids: '
                               f'{token_ids}')
        self._resize_embeddings(len(self.tokenizer))
        return token_ids

    @torch.no_grad()
    def _resize_embeddings(self, new_size: int) -> None:
        """Resize input/output embeddings; new rows = mean of the old rows."""
        old_size = self.model.get_input_embeddings().weight.shape[0]
        if new_size == old_size:
            return
        self.model.resize_token_embeddings(new_size, mean_resizing=False)
        if new_size < old_size:
            return
        modules = [self.model.get_input_embeddings()]
        out = self.model.get_output_embeddings()
        if out is not None and out.weight is not modules[0].weight:
            modules.append(out)
        for module in modules:
            weight = module.weight
            weight[old_size:] = weight[:old_size].mean(0, keepdim=True)
        self.model.config.vocab_size = new_size
        print_log(
            f'HFCausalLM: vocabulary {old_size} -> {new_size} '
            '(new rows initialised to the mean embedding)',
            logger='current')

    def _wrap_lora(self, lora: dict) -> None:
        from peft import LoraConfig, get_peft_model
        cfg = dict(lora)
        cfg.setdefault('bias', 'none')
        cfg.setdefault('task_type', 'CAUSAL_LM')
        if 'target_modules' in cfg:
            cfg['target_modules'] = list(cfg['target_modules'])
        self.model = get_peft_model(self.model, LoraConfig(**cfg))

    def _set_trainable(self, trainable: Union[str, Sequence[str]]) -> None:
        if trainable == 'all':
            for name, param in self.model.named_parameters():
                param.requires_grad_(True)
            return
        if isinstance(trainable, str):
            trainable = (trainable, )
        for name, param in self.model.named_parameters():
            if 'lora_' in name:
                continue
            if any(key in name for key in trainable):
                param.requires_grad_(True)

    @torch.no_grad()
    def _cast_trainable(self) -> None:
        """Give trainable floating parameters ``trainable_dtype`` (fp32
        master weights); frozen ones keep ``compute_dtype``."""
        dtype = self.trainable_dtype
        if dtype is None:
            return
        for param in self.model.parameters():
            if param.requires_grad and param.is_floating_point() and \
                    param.dtype != dtype:
                param.data = param.data.to(dtype)

    def _cast_lm_head_input(self) -> None:
        """Feed the LM head its own dtype (fp32 head after a bf16 decoder;
        under autocast the matmul is cast again, which is harmless)."""
        head = self.model.get_output_embeddings()
        if head is None or getattr(head, '_mmg_input_cast', False):
            return
        head.register_forward_pre_hook(_cast_input_to_weight)
        head._mmg_input_cast = True

    def _capture_last_hidden(self) -> None:
        """Forward hook on the decoder (``get_decoder()``, the base model
        before the LM head): while ``forward(output_last_hidden_state=True)``
        runs it keeps the decoder's ``last_hidden_state`` (final-norm output
        [B, L, C], the tensor the LM head reads), so callers get that one
        layer instead of every layer's states (``output_hidden_states``).
        The hook stores nothing unless asked (a stored training state would
        keep its autograd graph alive)."""
        self._last_hidden_box: Dict[str, torch.Tensor] = {}
        decoder = self.model.get_decoder()
        if getattr(decoder, '_mmg_last_hidden_hook', False):
            decoder._mmg_last_hidden_owner = self._last_hidden_box
            return
        decoder._mmg_last_hidden_owner = self._last_hidden_box
        decoder.register_forward_hook(_keep_last_hidden)
        decoder._mmg_last_hidden_hook = True

    def init_weights(self) -> None:
        """The HF model initialises (or loads) itself; nothing to do."""

    # --------------------------------------------------------------- helpers
    @property
    def hidden_size(self) -> int:
        return self.model.config.get_text_config().hidden_size

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the decoder computes in: that of the frozen weights
        (``torch_dtype``), or of the weights when everything trains."""
        first = None
        for param in self.model.parameters():
            if not param.requires_grad:
                return param.dtype
            if first is None:
                first = param
        return first.dtype if first is not None else torch.float32

    @property
    def vocab_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[0]

    @property
    def eos_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id

    def lora_parameter_count(self) -> int:
        """Number of LoRA adapter parameters (0 without LoRA)."""
        return sum(p.numel() for n, p in self.model.named_parameters()
                   if 'lora_' in n)

    def merge_lora(self) -> None:
        """Fold the LoRA adapters into the base weights (for export/speed).

        Afterwards ``self.model`` is the plain HF model; the parameters named
        in ``trainable`` keep training, the merged weights are frozen.
        """
        if self.lora_cfg is None:
            print_log(
                'HFCausalLM.merge_lora: no LoRA to merge', logger='current')
            return
        self.model = self.model.merge_and_unload()
        self.lora_cfg = None
        for param in self.model.parameters():
            param.requires_grad_(False)
        self._set_trainable(self.trainable)
        self._cast_trainable()
        self._cast_lm_head_input()
        self._capture_last_hidden()

    # --------------------------------------------------------------- forward
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings: LongTensor[B, L] -> Tensor[B, L, C]."""
        return self.model.get_input_embeddings()(input_ids)

    def forward(self,
                inputs_embeds: torch.Tensor,
                attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None,
                past_key_values=None,
                use_cache: bool = False,
                output_hidden_states: bool = False,
                position_ids: Optional[torch.Tensor] = None,
                logits_to_keep: int = 0,
                output_last_hidden_state: bool = False,
                cache_position: Optional[torch.Tensor] = None):
        """Run the LM on embeddings.

        Args:
            inputs_embeds: Tensor[B, L, C].
            attention_mask: [B, L_past + L] (1 = token, 0 = padding).
            labels: LongTensor[B, L], -100 where ignored; HF shifts them, so
                ``loss`` is the next-token cross-entropy.
            past_key_values: a HF cache (``DynamicCache``) or None.
            use_cache: return the updated cache.
            output_hidden_states: return every layer's hidden states;
                ``hidden_states[-1]`` is the final-norm output the LM head
                reads.
            position_ids: [B, L]; computed from ``attention_mask`` (last L
                columns) when omitted, which makes left padding correct.
            logits_to_keep: compute logits only for the last k positions
                (0 = all).
            output_last_hidden_state: also return ``last_hidden_state``
                [B, L, C], the final-norm output the LM head reads (equal to
                ``hidden_states[-1]``), without keeping the other layers.
            cache_position: LongTensor[L] slots of these positions in the
                cache (a ``StaticCache`` needs them; None = after the past).

        Returns:
            The HF ``CausalLMOutputWithPast`` (``loss``, ``logits`` [B, L, V],
            ``past_key_values``, ``hidden_states``, and ``last_hidden_state``
            when asked).
        """
        # fp32 embedding rows (trainable_dtype) into a bf16 decoder
        inputs_embeds = inputs_embeds.to(self.compute_dtype)
        if position_ids is None and attention_mask is not None:
            length = inputs_embeds.shape[1]
            position_ids = position_ids_from_mask(
                attention_mask)[:, -length:]
        box = self._last_hidden_box
        box['on'] = output_last_hidden_state
        try:
            out = self.model(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                labels=labels,
                past_key_values=past_key_values,
                use_cache=use_cache,
                output_hidden_states=output_hidden_states,
                logits_to_keep=logits_to_keep,
                return_dict=True,
                **({} if cache_position is None else
                   dict(cache_position=cache_position)))
        finally:
            box['on'] = False
            state = box.pop('state', None)
        if output_last_hidden_state:
            if state is None:
                raise RuntimeError(
                    'HFCausalLM: the decoder hook saw no forward; '
                    f'{type(self.model).__name__}.get_decoder() is not the '
                    'module that feeds the LM head')
            out['last_hidden_state'] = state
        return out

    def _step_parts(self):
        """(decoder, LM head) of the current model, looked up once per
        model (again after a LoRA merge replaces it); kept as a plain
        attribute, not a registered submodule."""
        parts = self.__dict__.get('_parts')
        if parts is None or parts[0] is not self.model:
            parts = (self.model, self.model.get_decoder(),
                     self.model.get_output_embeddings())
            self.__dict__['_parts'] = parts
        return parts[1], parts[2]

    def loss_and_hidden(self,
                        inputs_embeds: torch.Tensor,
                        attention_mask: Optional[torch.Tensor],
                        labels: torch.Tensor,
                        num_labelled: Optional[int] = None):
        """Training: (next-token cross-entropy, last hidden state [B, L, C]).

        The loss of ``forward(labels=labels)`` (mean over the positions
        whose next label is not -100, logits in fp32), with the LM head run
        only on those positions: a training sequence is mostly prompt and
        image tokens (about 1 in 9 positions carries a label on the tiny
        synthetic data), and the head's matmuls and the log-softmax over
        the vocabulary for the other positions are thrown away by
        ``ignore_index``. Equal to HF's loss up to the order of the float
        sums (the mean's sum and the LM-head weight gradient add the same
        terms without the zero rows; about 1e-7 relative).

        Args:
            inputs_embeds: Tensor[B, L, C].
            attention_mask: [B, L] (1 = token).
            labels: LongTensor[B, L], -100 where ignored (unshifted, as
                for HF).
            num_labelled: ``(labels[:, 1:] != -100).sum()`` when the caller
                already has it on the host (saves the one sync this makes).
        """
        inputs_embeds = inputs_embeds.to(self.compute_dtype)
        position_ids = None if attention_mask is None else \
            position_ids_from_mask(attention_mask)
        decoder, head = self._step_parts()
        hidden = decoder(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
            return_dict=True).last_hidden_state
        # position t predicts labels[:, t + 1]
        targets = torch.cat([labels[:, 1:], labels.new_full(
            (labels.shape[0], 1), -100)], 1)
        predicts = targets != -100
        if num_labelled is None:
            num_labelled = int(predicts.sum())
        rows = masked_rows(hidden, predicts, num_labelled)
        logits = head(rows).float()
        loss = F.cross_entropy(
            logits, masked_rows(targets[..., None], predicts,
                                num_labelled)[:, 0])
        return loss, hidden

    def forward_last(self,
                     inputs_embeds: torch.Tensor,
                     attention_mask: Optional[torch.Tensor],
                     position_ids: torch.Tensor,
                     past_key_values=None,
                     use_cache: bool = True,
                     cache_position: Optional[torch.Tensor] = None):
        """One generation step: (logits of the LAST position [B, V] fp32,
        its last-layer state [B, C]).

        Same arithmetic as ``forward(..., logits_to_keep=1,
        output_last_hidden_state=True)`` (the decoder, then the LM head on
        the last position), without the causal-LM wrapper, the output
        hook and the dtype/position bookkeeping around it: the decoder
        (``get_decoder()``, LoRA layers included) returns its final-norm
        output and the LM head reads its last row. For small models the
        per-call Python overhead is a large part of a decode step.

        Args:
            inputs_embeds: Tensor[B, L, C] in ``compute_dtype``.
            attention_mask: 2D [B, L_past + L] (1 = token), or a prepared
                4D boolean mask [B, 1, L, K] (True = attend) that HF uses as
                is, or None (no padding).
            position_ids: LongTensor[B, L].
            past_key_values, use_cache, cache_position: as in
                :meth:`forward`.
        """
        decoder, head = self._step_parts()
        out = decoder(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            return_dict=True,
            **({} if cache_position is None else
               dict(cache_position=cache_position)))
        hidden = out.last_hidden_state[:, -1:]
        return head(hidden)[:, -1].float(), hidden[:, -1]
