"""BaseGroundedLMM: the wiring every grounded LMM shares.

A grounded LMM reads an image and a conversation, writes an answer and
grounds each grounding token of it (``[SEG]`` / ``<seg>``) in the image. The
parts (vision encoder, projector, language model, prompt encoders, seg
projector, grounding head) are built from their configs; this class owns the
model-neutral machinery between them, as mmdet's ``BaseDETR`` does for DETRs.
GLaMM and LLaVA-Grounding are subclasses that only choose parts and fill
the seams marked ``[seam]`` below.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, \
    Union

import torch
from mmdet.structures import DetDataSample
from mmengine.model import BaseModel

from mmgrounding.registry import MODELS
from mmgrounding.structures.markup import parse_answer
from ..utils.generation import (HIDDEN_SOURCES, GenerationOutput, generate,
                                reference_generate)
from ..utils.hf import masked_rows
from ..utils.trainable_state import TrainableStateDictMixin
from ..utils.samples import sample_name

ForwardResults = Union[Dict[str, torch.Tensor], List[DetDataSample],
                       torch.Tensor]


@dataclass(frozen=True)
class PromptSlot:
    """How the embeddings of one placeholder token are made.

    Attributes:
        encoder: attribute name of the encoder module on the model (its
            state-dict prefix, e.g. ``'region_encoder'``).
        view: key of :meth:`BaseGroundedLMM.image_views` the encoder reads
            (e.g. ``'region_feats'``, ``'grounding_pixels'``).
        prompts: data-sample field holding the sample's prompts in that
            view, one entry per placeholder token, in token order (e.g.
            ``'region_bboxes_clip'`` [R, 4], or ``'visual_prompts_grounding'``
            (a list of dicts) from ``GroundingDataPreprocessor``).

    The encoder is called as ``encoder(view, [prompts of each sample])`` and
    returns one [R_i, C_lm] tensor per sample (or their concatenation).
    """
    encoder: str
    view: str
    prompts: str


class Answer(NamedTuple):
    """The text side of a prediction, before grounding.

    Attributes:
        text: decoded answer (special tokens removed).
        states: [M, C] hidden states grounding its M grounding tokens.
        phrases: the M phrases those tokens ground.
    """
    text: str
    states: torch.Tensor
    phrases: List[str]


class BaseGroundedLMM(TrainableStateDictMixin, BaseModel):
    """Image + conversation -> answer with grounded tokens.

    Flow (``loss``; ``predict`` replaces the LM call by generation)::

        inputs['clip_pixels'] --vision_encoder--> feats (tuple of levels)
            feats[image_feature_level] --projector--> image embeds [B, P, C]
        input_ids --language_model.embed--> token embeds [B, L, C]
            <image>  <- image embeds            (P per sample, else error)
            <token>  <- prompt_slots[<token>]   (encoder(view, prompts))
        --language_model--> logits, last hidden state [B, L, C]
            loss_lm (next-token CE on labels)
        grounding-token states (train_/test_seg_hidden_source:
            'self' = at the token, 'preceding' = the one before it)
        --seg_projector (None = identity)--> prompt_embeds [B, N, D]
        grounding_head.loss(prompt_embeds, grounding_inputs, data_samples)
        grounding_head.predict(...) -> InstanceData per sample

    Seams a subclass fills (everything else is shared):

    - ``prompt_slots`` (``__init__`` argument): ``{token: PromptSlot}`` for
      each visual-prompt placeholder (GLaMM ``<bbox>``, LLaVA-G ``<obj>``).
    - :meth:`image_views`: the inputs prompt encoders read (default: the
      vision features, the CLIP and grounding pixels).
    - :meth:`answer`: how the text side of a prediction is made (default:
      batched KV-cache generation; GLaMM adds teacher-forced RefSeg).
    - ``answer_style``: markup style of the answers (``'glamm'`` or
      ``'llava_g'``, see ``mmgrounding.structures.markup``).

    What trains is each part's own ``trainable`` argument (one vocabulary:
    ``HFVisionEncoder(trainable=False)``, ``MLPProjector(trainable=...)``,
    ``HFCausalLM(trainable=..., lora=...)``,
    ``SAMGroundingHead(trainable=('mask_decoder', ))``).

    Checkpoints: ``state_dict`` leaves out frozen tensors that still equal
    the local directory they were loaded from and records where they must
    come from (:class:`TrainableStateDictMixin`); loading refuses another
    source.

    The head is called only through the grounding-head contract
    (``docs/architecture.md``): ``extract_feat``, ``loss``, ``predict``.

    Args:
        vision_encoder: config of a vision encoder returning a tuple of
            patch features [B, P, C_v] (e.g. ``HFVisionEncoder``).
        projector: vision -> LM projection (``MLPProjector``).
        language_model: ``HFCausalLM`` config; its tokenizer must hold the
            image, seg and prompt tokens.
        grounding_head: a grounding head config (``SAMGroundingHead``, ...).
        seg_projector: LM hidden -> head prompt embedding; ``None`` passes
            the LM states through (a head that reads them raw).
        prompt_encoders: ``{attribute: config or None}`` of the prompt
            encoders, built in this order after the language model; the
            ``prompt_slots`` name them.
        prompt_slots: ``{placeholder token: PromptSlot}``.
        data_preprocessor: ``GroundingDataPreprocessor`` config.
        loss_lm_weight: weight of the next-token cross-entropy.
        image_feature_level: which vision output fills the image tokens.
        train_seg_hidden_source / test_seg_hidden_source: ``'preceding'`` or
            ``'self'``: which hidden state grounds a grounding token in
            training and at inference.
        generation_cfg: ``max_new_tokens``, ``do_sample``, ``temperature``,
            ``top_p``, ``stop_strings``, ``seed``, ``use_cache``,
            ``cache_implementation`` (``'dynamic'`` or ``'static'``),
            ``compile`` (``torch.compile`` the decode step; static cache).
        image_token, seg_token: token names (ids are looked up).
        teacher_forced_tasks: tasks whose test samples already hold the
            answer (test pipeline ``with_answer=True``), read by one forward
            instead of generated: the grounding tokens of the GIVEN answer
            are grounded (e.g. ``('phrase_grounding', )``: Flickr30K
            Entities phrases are given, as in MDETR-style evaluation).
    """
    answer_style: str = 'glamm'

    def __init__(self,
                 vision_encoder: dict,
                 projector: dict,
                 language_model: dict,
                 grounding_head: dict,
                 seg_projector: Optional[dict] = None,
                 prompt_encoders: Optional[Dict[str, Optional[dict]]] = None,
                 prompt_slots: Optional[Dict[str, PromptSlot]] = None,
                 data_preprocessor: Optional[dict] = None,
                 loss_lm_weight: float = 1.0,
                 image_feature_level: int = -1,
                 train_seg_hidden_source: str = 'preceding',
                 test_seg_hidden_source: str = 'preceding',
                 generation_cfg: Optional[dict] = None,
                 image_token: str = '<image>',
                 seg_token: str = '[SEG]',
                 teacher_forced_tasks: Sequence[str] = (),
                 init_cfg: Optional[dict] = None) -> None:
        if isinstance(data_preprocessor, dict):
            # built from our registry, so no default scope is needed
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        name = type(self).__name__
        for key, src in (('train_seg_hidden_source', train_seg_hidden_source),
                         ('test_seg_hidden_source', test_seg_hidden_source)):
            if src not in HIDDEN_SOURCES:
                raise ValueError(f'{name}: {key} must be one of '
                                 f'{HIDDEN_SOURCES}, got {src!r}')
        # build order is part of the numerics (random init draws)
        self.vision_encoder = MODELS.build(vision_encoder)
        self.projector = MODELS.build(projector)
        self.language_model = MODELS.build(language_model)
        for attr, cfg in (prompt_encoders or {}).items():
            setattr(self, attr, None if cfg is None else MODELS.build(cfg))
        self.seg_projector = None if seg_projector is None else \
            MODELS.build(seg_projector)
        self.grounding_head = MODELS.build(grounding_head)

        self.loss_lm_weight = loss_lm_weight
        #: False skips the grounding head's losses (LLaVA-G stage 3 trains
        #: only the visual-prompt encoder)
        self.grounding_loss = True
        self.image_feature_level = image_feature_level
        self.train_seg_hidden_source = train_seg_hidden_source
        self.test_seg_hidden_source = test_seg_hidden_source
        self.teacher_forced_tasks = tuple(teacher_forced_tasks)
        self.generation_cfg = dict(
            max_new_tokens=32,
            do_sample=False,
            temperature=1.0,
            top_p=1.0,
            stop_strings=(),
            seed=None,
            use_cache=True,
            cache_implementation='dynamic',
            compile=False)
        self.generation_cfg.update(generation_cfg or {})

        self.tokenizer = self.language_model.tokenizer
        self.image_token_id = self._token_id(image_token)
        self.seg_token = seg_token
        self.seg_token_id = self._token_id(seg_token)
        self.prompt_slots = dict(prompt_slots or {})
        self.prompt_token_ids = {
            tok: self._token_id(tok)
            for tok in self.prompt_slots
        }
        for tok, slot in self.prompt_slots.items():
            if not hasattr(self, slot.encoder):
                raise ValueError(f'{name}: prompt slot {tok!r} names the '
                                 f'encoder {slot.encoder!r}, which is not '
                                 'among prompt_encoders')

    def _token_id(self, token: str) -> int:
        ids = self.language_model.token_ids
        if token in ids:
            return ids[token]
        tok_id = self.tokenizer.convert_tokens_to_ids(token)
        if tok_id is None or tok_id == self.tokenizer.unk_token_id:
            raise ValueError(f'{type(self).__name__}: the tokenizer has no '
                             f'{token!r} token; add it to '
                             'language_model.special_tokens')
        return tok_id

    # ------------------------------------------------------------ embedding
    def extract_visual_features(
            self, clip_pixels: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """CLIP view [B, 3, S, S] -> the vision encoder's feature tuple."""
        feats = self.vision_encoder(clip_pixels)
        if isinstance(feats, torch.Tensor):
            feats = (feats, )
        return tuple(feats)

    def image_views(self, inputs: Dict[str, Any],
                    feats: Tuple[torch.Tensor, ...]) -> Dict[str, Any]:
        """[seam] What prompt encoders may read: ``clip_feats`` (the vision
        feature tuple), ``clip_pixels``, ``grounding_pixels``. Override to
        add views (GLaMM: the region-encoder levels)."""
        return dict(
            clip_feats=feats,
            clip_pixels=inputs.get('clip_pixels'),
            grounding_pixels=inputs.get('grounding_pixels'))

    def token_counts(self,
                     input_ids: torch.Tensor,
                     labels: Optional[torch.Tensor] = None
                     ) -> Dict[Any, List[int]]:
        """Per row, the count of every token the base checks, in ONE host
        sync: ``{token_id: [B] counts}`` for the image, prompt and seg
        tokens, ``'seg_at_start'``: [B] 1 where a seg token is at
        position 0 (it has no preceding state), and with ``labels``
        [B, L] ``'labelled'``: [B] positions whose next label is not -100
        (the rows the LM loss reads)."""
        ids = [self.image_token_id, *self.prompt_token_ids.values(),
               self.seg_token_id]
        table = torch.tensor(ids, device=input_ids.device)
        counts = (input_ids[None] == table[:, None, None]).sum(-1)  # [K, B]
        extra = [(input_ids[:, :1] == self.seg_token_id).long().T]  # [1, B]
        if labels is not None:
            extra.append((labels[:, 1:] != -100).sum(1)[None])
        host = torch.cat([counts, *extra]).tolist()
        out: Dict[Any, List[int]] = dict(zip(ids, host[:len(ids)]))
        out['seg_at_start'] = host[len(ids)]
        if labels is not None:
            out['labelled'] = host[-1]
        return out

    def _check_counts(self,
                      input_ids: torch.Tensor,
                      token: str,
                      token_id: int,
                      expected: Sequence[int],
                      what: str,
                      data_samples,
                      counts: Optional[Dict[Any, List[int]]] = None
                      ) -> torch.Tensor:
        """Mask [B, L] of ``token``; raises unless row i holds exactly
        ``expected[i]`` of them (both counts in the message). ``counts``
        (:meth:`token_counts`) saves the host sync."""
        mask = input_ids == token_id
        found = counts[token_id] if counts is not None and \
            token_id in counts else mask.sum(1).tolist()
        if found != list(expected):
            i = next(i for i, (a, b) in enumerate(zip(found, expected))
                     if a != b)
            sample = data_samples[i] if data_samples else None
            raise ValueError(
                f'{type(self).__name__}: {sample_name(i, sample)} has '
                f'{found[i]} {token} tokens but {expected[i]} {what}')
        return mask

    @staticmethod
    def _scatter(embeds: torch.Tensor, mask: torch.Tensor,
                 values: torch.Tensor) -> torch.Tensor:
        """Write ``values`` [K, C] into ``embeds`` [B, L, C] where ``mask``."""
        values = values.to(embeds.dtype)
        return embeds.masked_scatter(mask[..., None].expand_as(embeds),
                                     values)

    def embed_inputs(
            self,
            input_ids: torch.Tensor,
            inputs: Dict[str, Any],
            data_samples: Optional[Sequence[DetDataSample]] = None,
            feats: Optional[Tuple[torch.Tensor, ...]] = None,
            counts: Optional[Dict[Any, List[int]]] = None,
            prompt_losses: Optional[Dict[str, torch.Tensor]] = None
    ) -> torch.Tensor:
        """Token embeddings with image and prompt embeddings filled in.

        Args:
            input_ids: LongTensor[B, L]: P ``<image>`` tokens per row
                (P = vision patches) and one placeholder per prompt.
            inputs: the preprocessor's tensors (``clip_pixels`` [B, 3, S, S],
                ``grounding_pixels``, ...), rows matching ``input_ids``.
            data_samples: carry the prompts named by ``prompt_slots``.
            feats: precomputed vision features (skips the vision encoder).
            counts: :meth:`token_counts` of ``input_ids`` (computed here,
                one host sync, when omitted).
            prompt_losses: when given (training), a prompt encoder with a
                ``loss_and_embed`` method (e.g. the Semantic-SAM encoder of
                LLaVA-G) makes its embeddings and its own losses in ONE pass;
                the losses are added to this dict.

        Returns:
            Tensor[B, L, C_lm].
        """
        if counts is None:
            counts = self.token_counts(input_ids)
        if feats is None:
            feats = self.extract_visual_features(inputs['clip_pixels'])
        image_feats = self.projector(feats[self.image_feature_level])
        embeds = self.language_model.embed(input_ids)
        num = image_feats.shape[1]
        mask = self._check_counts(
            input_ids, '<image>', self.image_token_id, [num] * len(input_ids),
            'features per image from the vision encoder (the tokenizer '
            f'transform must expand <image> to {num} copies)', data_samples,
            counts)
        embeds = self._scatter(embeds, mask,
                               image_feats.reshape(-1, image_feats.shape[-1]))
        views = None
        for token, slot in self.prompt_slots.items():
            prompts = [
                self._sample_prompts(s, slot.prompts, embeds.device)
                for s in (data_samples or [None] * len(input_ids))
            ]
            mask = self._check_counts(
                input_ids, token, self.prompt_token_ids[token],
                [len(p) for p in prompts], f'prompts in `{slot.prompts}`',
                data_samples, counts)
            if not any(counts[self.prompt_token_ids[token]]):
                continue
            encoder = getattr(self, slot.encoder)
            if encoder is None:
                raise ValueError(f'{type(self).__name__}: the inputs hold '
                                 f'{token} tokens but the model has no '
                                 f'{slot.encoder}')
            if views is None:
                views = self.image_views(inputs, feats)
            if prompt_losses is not None and hasattr(encoder,
                                                     'loss_and_embed'):
                values, extra = encoder.loss_and_embed(
                    views[slot.view], prompts, data_samples)
                prompt_losses.update(extra)
            else:
                values = encoder(views[slot.view], prompts)
            if not isinstance(values, torch.Tensor):
                values = torch.cat(list(values), dim=0)
            embeds = self._scatter(embeds, mask, values)
        return embeds

    @staticmethod
    def _sample_prompts(sample, field: str, device: torch.device):
        value = None if sample is None else sample.get(field, None)
        if value is None:
            return torch.zeros((0, 4), device=device)
        if isinstance(value, (list, tuple)):
            return list(value)
        value = torch.as_tensor(getattr(value, 'tensor', value),
                                dtype=torch.float32, device=device)
        # [R, K] per-prompt rows (boxes: K = 4); a flat empty value is [0, 4]
        return value if value.dim() >= 2 else value.reshape(-1, 4)

    # ---------------------------------------------------- grounding tokens
    def grounding_states(
            self,
            hidden: torch.Tensor,
            input_ids: torch.Tensor,
            source: str,
            valid: Optional[torch.Tensor] = None,
            counts: Optional[Dict[Any, List[int]]] = None
    ) -> List[torch.Tensor]:
        """Per sample, the hidden states [M_i, C] grounding its tokens.

        Args:
            hidden: [B, L, C] last-layer hidden states.
            input_ids: [B, L].
            source: ``'self'`` (state at the token) or ``'preceding'`` (the
                state before it, whose logits predict the token).
            valid: optional BoolTensor [B, L]; grounding tokens outside it
                are ignored (e.g. earlier rounds of a teacher-forced prompt).
            counts: :meth:`token_counts` of ``input_ids`` (only without
                ``valid``); saves the host sync.

        The states are gathered for the whole batch at once (flat indices of
        the marked positions, row-major), with the per-row counts as the only
        host values.
        """
        token_mask = input_ids == self.seg_token_id
        if valid is not None:
            token_mask = token_mask & valid
        if valid is None and counts is not None:
            per_row, at_start = counts[self.seg_token_id], \
                counts['seg_at_start']
        else:
            per_row, at_start = torch.stack(
                [token_mask.sum(1), token_mask[:, 0].long()]).tolist()
        if source == 'preceding':
            if any(at_start):
                raise ValueError(f'{type(self).__name__}: a {self.seg_token} '
                                 'token at position 0 has no preceding '
                                 'hidden state')
            shifted = torch.zeros_like(token_mask)
            shifted[:, :-1] = token_mask[:, 1:]
            token_mask = shifted
        flat = masked_rows(hidden, token_mask, sum(per_row))
        return list(flat.split(per_row, 0))

    def project_prompts(
        self, states: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Grounding-token states -> (prompt_embeds [B, N, D], mask [B, N]).

        All states of the batch go through ``seg_projector`` together (a
        BatchNorm in it sees exactly the real tokens), then are zero-padded
        to N = the most tokens of a sample.
        """
        counts = [s.shape[0] for s in states]
        ref = states[0]
        width = ref.shape[-1] if self.seg_projector is None else \
            self.grounding_head.prompt_dim
        flat = torch.cat(states, 0)
        if sum(counts) and self.seg_projector is not None:
            param = next(self.seg_projector.parameters(), None)
            if param is not None:
                flat = flat.to(param.dtype)
            flat = self.seg_projector(flat)
            width = flat.shape[-1]
        embeds = flat.new_zeros((len(states), max(counts), width))
        mask = torch.zeros(embeds.shape[:2], dtype=torch.bool,
                           device=ref.device)
        for i, part in enumerate(flat.split(counts, 0)):
            if counts[i]:  # an empty part keeps the LM width, not D
                embeds[i, :counts[i]] = part
                mask[i, :counts[i]] = True
        return embeds, mask

    @staticmethod
    def grounding_inputs(inputs: Dict[str, Any], prompt_mask: torch.Tensor,
                         feats: Any = None,
                         prompt_counts: Optional[List[int]] = None
                         ) -> Dict[str, Any]:
        """The head's ``grounding_inputs`` (docs/architecture.md).

        Optional host-side copies spare the head device reads:
        ``prompt_counts`` ([B] real tokens per row) and ``sizes_host``
        ([B] (h, w), from the preprocessor's ``grounding_sizes_host``).
        """
        out = dict(
            pixels=inputs['grounding_pixels'],
            sizes=inputs['grounding_sizes'],
            prompt_mask=prompt_mask)
        if feats is not None:
            out['feats'] = feats
        if prompt_counts is not None:
            out['prompt_counts'] = list(prompt_counts)
        if inputs.get('grounding_sizes_host') is not None:
            out['sizes_host'] = inputs['grounding_sizes_host']
        return out

    # ---------------------------------------------------------------- loss
    def loss(self, inputs: Dict[str, torch.Tensor],
             data_samples: List[DetDataSample]) -> Dict[str, torch.Tensor]:
        """LM cross-entropy + the grounding head's losses.

        Returns:
            ``dict(loss_lm, **grounding_head.loss(...))``.
        """
        input_ids = inputs['input_ids']
        if inputs.get('labels') is None:
            raise ValueError(f'{type(self).__name__}.loss needs `labels` (the '
                             'data samples carry none: were they tokenized '
                             'for predict?)')
        # the step's one host sync
        counts = self.token_counts(input_ids, inputs['labels'])
        feats = self.extract_visual_features(inputs['clip_pixels'])
        prompt_losses: Dict[str, torch.Tensor] = {}
        embeds = self.embed_inputs(input_ids, inputs, data_samples, feats,
                                   counts, prompt_losses)
        # the LM head runs only where a label is predicted
        loss_lm, hidden = self.language_model.loss_and_hidden(
            embeds, inputs.get('attention_mask'), inputs['labels'],
            num_labelled=sum(counts['labelled']))
        losses = dict(loss_lm=loss_lm * self.loss_lm_weight, **prompt_losses)
        states = self.grounding_states(
            hidden,
            input_ids,
            self.train_seg_hidden_source,
            counts=counts)
        prompt_embeds, prompt_mask = self.project_prompts(states)
        if self.grounding_loss:
            losses.update(
                self.grounding_head.loss(
                    prompt_embeds,
                    self.grounding_inputs(
                        inputs, prompt_mask,
                        prompt_counts=[len(s) for s in states]),
                    data_samples))
        return self._touch_unused(losses, input_ids, prompt_mask, counts)

    def _touch_unused(self, losses: Dict[str, torch.Tensor],
                      input_ids: torch.Tensor,
                      prompt_mask: torch.Tensor,
                      counts: Optional[Dict[Any, List[int]]] = None
                      ) -> Dict[str, torch.Tensor]:
        """Give the model's parts that this batch did not use a zero grad.

        DDP without ``find_unused_parameters`` waits for a gradient of every
        trainable parameter. Unused here: a prompt encoder whose token is
        absent from the batch, the seg projector when the batch has no
        grounding token. (The head ties its own unused parts, per the head
        contract.) One scalar element per parameter tensor times 0 is added
        to ``loss_lm``: cost O(number of tensors), not O(number of weights).
        With ``counts`` (:meth:`token_counts`) it needs no host sync.
        """
        if counts is None:
            counts = self.token_counts(input_ids)
        unused = [
            getattr(self, slot.encoder)
            for tok, slot in self.prompt_slots.items()
            if not any(counts[self.prompt_token_ids[tok]])
        ]
        if prompt_mask.shape[1] == 0:  # no grounding token in the batch
            unused.append(self.seg_projector)
        terms = [
            p.view(-1)[0] * 0. for m in unused if m is not None
            for p in m.parameters() if p.requires_grad and p.numel()
        ]
        if terms:
            losses['loss_lm'] = losses['loss_lm'] + torch.stack(
                [t.float() for t in terms]).sum()
        return losses

    # ------------------------------------------------------------- predict
    def _repack_left(
            self,
            rows: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Left-pad variable-length id rows -> (ids [B, L], mask [B, L])."""
        length = max(r.numel() for r in rows)
        pad = self.language_model.pad_token_id
        ids = rows[0].new_full((len(rows), length), pad)
        mask = rows[0].new_zeros((len(rows), length))
        for i, r in enumerate(rows):
            if r.numel():
                ids[i, length - r.numel():] = r
                mask[i, length - r.numel():] = 1
        return ids, mask

    @staticmethod
    def _rows(inputs: Dict[str, torch.Tensor],
              idx: Sequence[int]) -> List[torch.Tensor]:
        """The unpadded id rows ``idx`` of ``inputs['input_ids']``."""
        ids = inputs['input_ids']
        mask = inputs.get('attention_mask')
        if mask is None:
            mask = torch.ones_like(ids)
        return [ids[i][mask[i].bool()] for i in idx]

    @staticmethod
    def _select(inputs: Dict[str, Any], idx: Sequence[int]) -> Dict[str, Any]:
        """Rows ``idx`` of every batched tensor of ``inputs``."""
        return {
            k: v[list(idx)]
            for k, v in inputs.items() if isinstance(v, torch.Tensor)
        }

    def generate_batch(self,
                       inputs: Dict[str, torch.Tensor],
                       data_samples: Optional[List[DetDataSample]] = None,
                       **overrides) -> GenerationOutput:
        """Batched KV-cache generation from the prompts in ``inputs``.

        Prompts are re-packed with LEFT padding whatever padding they came
        with. ``overrides`` update ``generation_cfg`` for this call
        (``eos_token_id=None`` disables the eos stop, for benchmarks;
        ``state_token_ids=(seg_id, )`` keeps only the grounding tokens'
        states, in ``token_states``). The hidden state kept per token follows
        ``test_seg_hidden_source``.
        """
        cfg = dict(self.generation_cfg)
        cfg.setdefault('eos_token_id', self.language_model.eos_token_id)
        cfg.setdefault('state_token_ids', None)
        cfg.update(overrides)
        rows = self._rows(inputs, range(inputs['input_ids'].shape[0]))
        ids, mask = self._repack_left(rows)
        embeds = self.embed_inputs(ids, inputs, data_samples)
        generator = None
        seed = cfg.pop('seed', None)
        if seed is not None:
            generator = torch.Generator(device='cpu').manual_seed(seed)
        return generate(
            self.language_model,
            embeds,
            mask,
            max_new_tokens=cfg['max_new_tokens'],
            do_sample=cfg['do_sample'],
            temperature=cfg['temperature'],
            top_p=cfg['top_p'],
            generator=generator,
            eos_token_id=cfg['eos_token_id'],
            pad_token_id=self.language_model.pad_token_id,
            stop_strings=tuple(cfg['stop_strings'] or ()),
            tokenizer=self.tokenizer,
            hidden_source=self.test_seg_hidden_source,
            suppress_token_ids=(self.image_token_id, ),
            use_cache=cfg['use_cache'],
            state_token_ids=cfg['state_token_ids'],
            cache_implementation=cfg['cache_implementation'],
            compile=cfg['compile'])

    def generate_reference(self,
                           inputs: Dict[str, torch.Tensor],
                           data_samples: Optional[List[DetDataSample]] = None,
                           index: int = 0,
                           max_new_tokens: Optional[int] = None,
                           ignore_eos: bool = False) -> GenerationOutput:
        """The official GLaMM decoding loop for sample ``index`` (greedy,
        batch 1, no cache, vision tower re-run every step); for checks and
        the benchmark only."""
        ids = self._rows(inputs, [index])[0][None]
        sub = self._select(inputs, [index])
        samples = [data_samples[index]] if data_samples else None

        def build_embeds(cur_ids: torch.Tensor) -> torch.Tensor:
            return self.embed_inputs(cur_ids, sub, samples)

        return reference_generate(
            build_embeds,
            self.language_model,
            ids,
            max_new_tokens=max_new_tokens
            or self.generation_cfg['max_new_tokens'],
            eos_token_id=None
            if ignore_eos else self.language_model.eos_token_id,
            suppress_token_ids=(self.image_token_id, ))

    def decode(self, ids: torch.Tensor) -> str:
        """Generated ids -> answer text: eos/pad/bos removed, cut at the
        first stop string, whitespace collapsed."""
        text = self.tokenizer.decode(ids.tolist(), skip_special_tokens=False)
        for tok in (self.tokenizer.eos_token, self.tokenizer.pad_token,
                    self.tokenizer.bos_token):
            if tok:
                text = text.replace(tok, ' ')
        for stop in self.generation_cfg.get('stop_strings') or ():
            if stop in text:
                text = text[:text.index(stop)]
        return ' '.join(text.split())

    def generate_answers(self, inputs: Dict[str, torch.Tensor],
                         data_samples: List[DetDataSample],
                         idx: Sequence[int]) -> Dict[int, Answer]:
        """Generate the answers of samples ``idx`` in one batch."""
        out = self.generate_batch(
            self._select(inputs, idx), [data_samples[i] for i in idx],
            state_token_ids=(self.seg_token_id, ))
        results = {}
        lengths = out.lengths.tolist()
        for j, i in enumerate(idx):
            text = self.decode(out.sequences[j, :lengths[j]])
            _, phrases = parse_answer(text, self.answer_style)
            results[i] = Answer(text, out.token_states[j], phrases)
        return results

    def forced_states(self, inputs: Dict[str, torch.Tensor],
                      data_samples: List[DetDataSample], idx: Sequence[int],
                      rows: List[torch.Tensor],
                      readable: List[torch.Tensor]) -> List[torch.Tensor]:
        """Grounding states of teacher-forced rows, in one forward.

        Args:
            rows: per sample ``idx[j]`` its full id row (prompt + answer).
            readable: per row a BoolTensor of its length, True where a
                grounding token may be read (the answer part).
        """
        ids, mask = self._repack_left(rows)
        embeds = self.embed_inputs(ids, self._select(inputs, idx),
                                   [data_samples[i] for i in idx])
        out = self.language_model(
            inputs_embeds=embeds,
            attention_mask=mask,
            output_last_hidden_state=True,
            logits_to_keep=1)
        # rows are left-padded: each row fills the last columns
        valid = torch.zeros_like(ids, dtype=torch.bool)
        for j, keep in enumerate(readable):
            valid[j, ids.shape[1] - len(keep):] = keep
        return self.grounding_states(out['last_hidden_state'], ids,
                                     self.test_seg_hidden_source, valid)

    def given_answers(self, inputs: Dict[str, torch.Tensor],
                      data_samples: List[DetDataSample],
                      idx: Sequence[int]) -> Dict[int, Answer]:
        """Answers already in ``input_ids`` (``teacher_forced_tasks``).

        One forward over prompt + given answer; the answer's grounding
        tokens (label != -100) are grounded, one per ``gt_phrases`` entry.
        """
        labels = inputs.get('labels')
        if labels is None:
            raise ValueError(f'{type(self).__name__}: teacher-forced tasks '
                             'need labels (test pipeline with_answer=True)')
        rows = self._rows(inputs, idx)
        in_answer = []
        for i in idx:
            keep = inputs['attention_mask'][i].bool() \
                if 'attention_mask' in inputs else torch.ones_like(
                    labels[i], dtype=torch.bool)
            in_answer.append(labels[i][keep] != -100)
        states = self.forced_states(inputs, data_samples, idx, rows,
                                    in_answer)
        results = {}
        for j, i in enumerate(idx):
            phrases = list(data_samples[i].metainfo.get('gt_phrases') or [])
            if len(states[j]) != len(phrases):
                raise ValueError(
                    f'{type(self).__name__}: the given answer of sample '
                    f'{data_samples[i].metainfo.get("img_id")!r} has '
                    f'{len(states[j])} {self.seg_token} tokens but '
                    f'{len(phrases)} gt_phrases')
            results[i] = Answer(self.decode(rows[j][in_answer[j]]),
                                states[j], phrases)
        return results

    def answer_samples(self, inputs: Dict[str, torch.Tensor],
                       data_samples: List[DetDataSample],
                       idx: Sequence[int]) -> Dict[int, Answer]:
        """Answers of samples ``idx``: given (``teacher_forced_tasks``) or
        generated, each group in one batch."""
        given = [i for i in idx if data_samples[i].metainfo.get('task')
                 in self.teacher_forced_tasks]
        generated = [i for i in idx if i not in given]
        results = {}
        if given:
            results.update(self.given_answers(inputs, data_samples, given))
        if generated:
            results.update(
                self.generate_answers(inputs, data_samples, generated))
        return results

    def answer(self, inputs: Dict[str, torch.Tensor],
               data_samples: List[DetDataSample]) -> Dict[int, Answer]:
        """[seam] The answer of every sample (default: generated, or given
        for ``teacher_forced_tasks``)."""
        return self.answer_samples(inputs, data_samples,
                                   list(range(len(data_samples))))

    @torch.no_grad()
    def predict(self, inputs: Dict[str, torch.Tensor],
                data_samples: List[DetDataSample]) -> List[DetDataSample]:
        """Answer every sample and ground each of its grounding tokens.

        Fills, per data contract §4: ``pred_text``, ``pred_caption`` (markup
        removed), ``pred_phrases`` and ``pred_instances`` from the head
        (``masks`` bool [M, H, W] at original size, ``bboxes`` [M, 4],
        ``scores`` [M], ``labels`` = index of the grounding token).
        """
        answers = self.answer(inputs, data_samples)
        prompt_embeds, prompt_mask = self.project_prompts(
            [answers[i].states for i in range(len(data_samples))])
        preds = self.grounding_head.predict(
            prompt_embeds, self.grounding_inputs(inputs, prompt_mask),
            data_samples, rescale=True)
        for i, sample in enumerate(data_samples):
            text, _, phrases = answers[i]
            sample.pred_text = text
            sample.pred_caption, _ = parse_answer(text, self.answer_style)
            sample.pred_phrases = phrases
            sample.pred_instances = preds[i]
        return data_samples

    # -------------------------------------------------------------- tensor
    def _forward(
            self,
            inputs: Dict[str, torch.Tensor],
            data_samples: Optional[List[DetDataSample]] = None
    ) -> torch.Tensor:
        """LM logits [B, L, V] for the given (teacher-forced) sequences."""
        embeds = self.embed_inputs(inputs['input_ids'], inputs, data_samples)
        return self.language_model(
            inputs_embeds=embeds,
            attention_mask=inputs.get('attention_mask')).logits

    def forward(self,
                inputs: Dict[str, torch.Tensor],
                data_samples: Optional[List[DetDataSample]] = None,
                mode: str = 'tensor') -> ForwardResults:
        """mmengine entry: ``'loss'``, ``'predict'`` or ``'tensor'``."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'{type(self).__name__}: invalid mode {mode!r}; '
                           'only "loss", "predict" and "tensor" are '
                           'supported')


__all__ = ['BaseGroundedLMM', 'PromptSlot', 'Answer']
