"""GLaMM: a pixel-grounding LMM wired from swappable parts.

CLIP patch features (projected) fill the ``<image>`` placeholders, region
features fill ``<bbox>`` placeholders, the causal LM reads the sequence, and
the hidden state behind each ``[SEG]`` becomes, through ``seg_projector``, the
prompt of a SAM mask decoder. Every part is built from its own config dict;
this file only wires them.
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmdet.structures import DetDataSample
from mmdet.structures.mask import mask2bbox
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from mmgrounding.registry import MODELS
from ..utils.generation import (HIDDEN_SOURCES, GenerationOutput, generate,
                                reference_generate)
from ..utils.trainable_state import TrainableStateDictMixin

ForwardResults = Union[Dict[str, torch.Tensor], List[DetDataSample],
                       torch.Tensor]

_TAG = re.compile(r'<[^<>\s]*>')
_PHRASE = re.compile(r'<p>(.*?)</p>', re.S)


def _sample_name(index: int, sample: Optional[DetDataSample]) -> str:
    """'sample 3 (img_id=17, data/x.png)' for error messages."""
    if sample is None:
        return f'sample {index}'
    meta = sample.metainfo
    return (f"sample {index} (img_id={meta.get('img_id')}, "
            f"{meta.get('img_path')})")


def parse_glamm_answer(
    text: str, stop_tokens: Sequence[str] = ()) -> Tuple[str, List[str]]:
    """Caption and phrases of a GLaMM answer.

    ``'<p> a red circle </p> [SEG] left of ...'`` -> caption
    ``'a red circle left of ...'`` (every ``<tag>`` and ``[SEG]`` removed,
    whitespace collapsed: the official GCG convention) and phrases
    ``['a red circle']`` (the ``<p>...</p>`` contents, in order).
    """
    for tok in stop_tokens:
        text = text.replace(tok, ' ')
    phrases = [' '.join(p.split()) for p in _PHRASE.findall(text)]
    caption = _TAG.sub(' ', text).replace('[SEG]', ' ')
    return ' '.join(caption.split()), phrases


@MODELS.register_module()
class GLaMM(TrainableStateDictMixin, BaseModel):
    """GLaMM (Rasheed et al., CVPR 2024) as an mmengine model.

    Args:
        vision_encoder: config of a vision encoder returning a tuple of
            patch features [B, N, C] (e.g. ``HFVisionEncoder``).
        projector: vision -> LM projection (``MLPProjector``).
        language_model: ``HFCausalLM`` config; its tokenizer must hold the
            image, bbox and seg tokens.
        seg_projector: LM hidden -> SAM prompt embedding (the official
            ``text_hidden_fcs``: 4096 -> 4096 -> 256).
        grounding_head: ``SAMGroundingHead`` config (its losses carry the
            mask BCE 2.0 and DICE 0.5 weights).
        region_encoder: optional ``GLaMMRegionEncoder`` config for ``<bbox>``
            prompts.
        data_preprocessor: ``GroundingDataPreprocessor`` config.
        loss_lm_weight: weight of the next-token cross-entropy.
        image_feature_level: which of the vision encoder's outputs fills the
            image tokens (official: CLIP's penultimate layer).
        region_feature_levels: which outputs the region encoder reads
            (None = all).
        seg_hidden_source: ``'preceding'`` (official: the hidden state of
            the token before ``[SEG]``, whose logits predict it) or ``'self'``
            (the state at ``[SEG]``). Used in training and inference alike.
        refseg_teacher_forcing: evaluate ``task == 'refseg'`` samples as the
            official RefSeg evaluation does: one forward over the prompt plus
            ``refseg_answer`` (one copy per expected target), no generation.
        refseg_answer: the teacher-forced answer; must contain the seg token.
        generation_cfg: ``max_new_tokens``, ``do_sample``, ``temperature``,
            ``top_p``, ``stop_strings``, ``seed``, ``use_cache``.
        frozen_modules: attribute names whose parameters never train
            (official with LoRA: the CLIP tower and the V-L projector).
        image_token, bbox_token, seg_token: token names (ids are looked up).
    """

    def __init__(self,
                 vision_encoder: dict,
                 projector: dict,
                 language_model: dict,
                 seg_projector: dict,
                 grounding_head: dict,
                 region_encoder: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 loss_lm_weight: float = 1.0,
                 image_feature_level: int = -1,
                 region_feature_levels: Optional[Sequence[int]] = None,
                 seg_hidden_source: str = 'preceding',
                 refseg_teacher_forcing: bool = True,
                 refseg_answer: str = 'Sure, it is [SEG].',
                 generation_cfg: Optional[dict] = None,
                 frozen_modules: Sequence[str] = ('vision_encoder', ),
                 image_token: str = '<image>',
                 bbox_token: str = '<bbox>',
                 seg_token: str = '[SEG]',
                 init_cfg: Optional[dict] = None) -> None:
        if isinstance(data_preprocessor, dict):
            # built from our registry, so no default scope is needed
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if seg_hidden_source not in HIDDEN_SOURCES:
            raise ValueError(f'GLaMM: seg_hidden_source must be one of '
                             f'{HIDDEN_SOURCES}, got {seg_hidden_source!r}')
        self.vision_encoder = MODELS.build(vision_encoder)
        self.projector = MODELS.build(projector)
        self.language_model = MODELS.build(language_model)
        self.region_encoder = MODELS.build(
            region_encoder) if region_encoder is not None else None
        self.seg_projector = MODELS.build(seg_projector)
        self.grounding_head = MODELS.build(grounding_head)

        self.loss_lm_weight = loss_lm_weight
        self.image_feature_level = image_feature_level
        self.region_feature_levels = None if region_feature_levels is None \
            else tuple(region_feature_levels)
        self.seg_hidden_source = seg_hidden_source
        self.refseg_teacher_forcing = refseg_teacher_forcing
        self.generation_cfg = dict(
            max_new_tokens=32,
            do_sample=False,
            temperature=1.0,
            top_p=1.0,
            stop_strings=(),
            seed=None,
            use_cache=True)
        self.generation_cfg.update(generation_cfg or {})

        tokenizer = self.language_model.tokenizer
        self.tokenizer = tokenizer
        self.image_token_id = self._token_id(image_token)
        self.bbox_token_id = self._token_id(bbox_token)
        self.seg_token_id = self._token_id(seg_token)
        self.seg_token = seg_token
        self.refseg_answer = refseg_answer
        self.refseg_answer_ids = tokenizer(
            refseg_answer, add_special_tokens=False).input_ids
        if self.seg_token_id not in self.refseg_answer_ids:
            raise ValueError(f'GLaMM: refseg_answer {refseg_answer!r} has '
                             f'no {seg_token} token')

        self.frozen_modules = tuple(frozen_modules)
        for name in self.frozen_modules:
            module = getattr(self, name, None)
            if module is None:
                raise ValueError(f'GLaMM: frozen_modules names {name!r}, '
                                 'which this model does not have')
            module.requires_grad_(False)

    def _token_id(self, token: str) -> int:
        ids = self.language_model.token_ids
        if token in ids:
            return ids[token]
        tok_id = self.tokenizer.convert_tokens_to_ids(token)
        if tok_id is None or tok_id == self.tokenizer.unk_token_id:
            raise ValueError(f'GLaMM: the tokenizer has no {token!r} token; '
                             'add it to language_model.special_tokens')
        return tok_id

    # ------------------------------------------------------------ embedding
    def extract_visual_features(
            self, clip_pixels: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """CLIP view [B, 3, S, S] -> the vision encoder's feature tuple."""
        feats = self.vision_encoder(clip_pixels)
        if isinstance(feats, torch.Tensor):
            feats = (feats, )
        return tuple(feats)

    def _scatter(self, embeds: torch.Tensor, token_mask: torch.Tensor,
                 values: torch.Tensor) -> torch.Tensor:
        """Write ``values`` [K, C] into ``embeds`` where ``token_mask``."""
        values = values.to(embeds.dtype)
        return embeds.masked_scatter(token_mask[..., None].expand_as(embeds),
                                     values)

    def embed_inputs(
            self,
            input_ids: torch.Tensor,
            clip_pixels: torch.Tensor,
            data_samples: Optional[Sequence[DetDataSample]] = None,
            feats: Optional[Tuple[torch.Tensor, ...]] = None) -> torch.Tensor:
        """Token embeddings with image and region features filled in.

        Args:
            input_ids: LongTensor[B, L] with exactly N ``<image>`` tokens per
                row (N = vision patches) and one ``<bbox>`` per region box.
            clip_pixels: [B, 3, S, S] CLIP view.
            data_samples: carry ``region_bboxes_clip`` [R, 4] (CLIP-view
                xyxy), one box per ``<bbox>`` token, in order.
            feats: precomputed vision features (skips the vision encoder).

        Returns:
            Tensor[B, L, C_lm].
        """
        if feats is None:
            feats = self.extract_visual_features(clip_pixels)
        image_feats = self.projector(feats[self.image_feature_level])
        embeds = self.language_model.embed(input_ids)

        image_mask = input_ids == self.image_token_id
        counts = image_mask.sum(1).tolist()
        num_patches = image_feats.shape[1]
        for i, count in enumerate(counts):
            if count != num_patches:
                sample = data_samples[i] if data_samples else None
                raise ValueError(
                    f'GLaMM: {_sample_name(i, sample)} has {count} '
                    f'<image> tokens in input_ids but the vision encoder '
                    f'gives {num_patches} features per image; the tokenizer '
                    f'transform must expand <image> to {num_patches} copies')
        embeds = self._scatter(embeds, image_mask,
                               image_feats.reshape(-1, image_feats.shape[-1]))
        return self._embed_regions(embeds, input_ids, feats, data_samples)

    def _embed_regions(
            self, embeds: torch.Tensor, input_ids: torch.Tensor,
            feats: Tuple[torch.Tensor, ...],
            data_samples: Optional[Sequence[DetDataSample]]) -> torch.Tensor:
        bbox_mask = input_ids == self.bbox_token_id
        counts = bbox_mask.sum(1).tolist()
        boxes = []
        for i, count in enumerate(counts):
            sample = data_samples[i] if data_samples else None
            box = getattr(sample, 'region_bboxes_clip', None) \
                if sample is not None else None
            if box is None:
                box = embeds.new_zeros((0, 4))
            box = torch.as_tensor(
                box, dtype=torch.float32, device=embeds.device).reshape(-1, 4)
            if box.shape[0] != count:
                raise ValueError(
                    f'GLaMM: {_sample_name(i, sample)} has {count} <bbox> '
                    f'tokens but {box.shape[0]} region boxes '
                    '(region_bboxes_clip)')
            boxes.append(box)
        if sum(counts) == 0:
            return embeds
        if self.region_encoder is None:
            raise ValueError('GLaMM: the inputs hold <bbox> tokens but the '
                             'model has no region_encoder')
        levels = feats if self.region_feature_levels is None else \
            [feats[k] for k in self.region_feature_levels]
        region_feats = self.region_encoder(levels, boxes)
        region_feats = torch.cat(list(region_feats), dim=0)
        return self._scatter(embeds, bbox_mask, region_feats)

    def _zero_touch(self, *modules: Optional[nn.Module]) -> torch.Tensor:
        """0 * sum of trainable params: keeps unused branches in the graph
        (DDP without ``find_unused_parameters``) and gives them zero grads."""
        total = None
        for module in modules:
            if module is None:
                continue
            for p in module.parameters():
                if p.requires_grad:
                    term = p.sum() * 0.
                    total = term if total is None else total + term
        return total

    # ----------------------------------------------------------------- seg
    def _source_mask(self, seg_mask: torch.Tensor) -> torch.Tensor:
        """Positions whose hidden state grounds each ``[SEG]`` position."""
        if self.seg_hidden_source == 'self':
            return seg_mask
        source = torch.zeros_like(seg_mask)
        source[:, :-1] = seg_mask[:, 1:]
        if bool(seg_mask[:, 0].any()):
            raise ValueError('GLaMM: a [SEG] token at position 0 has no '
                             'preceding hidden state')
        return source

    def seg_hidden_states(self, hidden: torch.Tensor,
                          input_ids: torch.Tensor) -> List[torch.Tensor]:
        """Per sample, the hidden states [M_i, C] grounding its [SEG]s."""
        source = self._source_mask(input_ids == self.seg_token_id)
        return [hidden[i][source[i]] for i in range(hidden.shape[0])]

    def _project_seg(self,
                     seg_hidden: List[torch.Tensor]) -> List[torch.Tensor]:
        counts = [h.shape[0] for h in seg_hidden]
        if sum(counts) == 0:
            return [h.new_zeros((0, 0)) for h in seg_hidden]
        param = next(self.seg_projector.parameters(), None)
        flat = torch.cat(seg_hidden, 0)
        if param is not None:
            flat = flat.to(param.dtype)
        prompts = self.seg_projector(flat)
        return list(prompts.split(counts, 0))

    def _mask_logits(
            self, prompts: List[torch.Tensor], grounding_pixels: torch.Tensor,
            grounding_sizes: torch.Tensor,
            ori_sizes: List[Tuple[int, int]]) -> Dict[int, torch.Tensor]:
        """Mask logits [M_i, H_i, W_i] at original size, for samples with
        at least one prompt (SAM image embeddings computed once per image).
        """
        idx = [i for i, p in enumerate(prompts) if p.shape[0] > 0]
        if not idx:
            return {}
        img_embeds = self.grounding_head.image_embeddings(
            grounding_pixels[idx])
        logits = self.grounding_head.predict(
            img_embeds, [prompts[i] for i in idx], grounding_sizes[idx],
            [tuple(ori_sizes[i]) for i in idx])
        return dict(zip(idx, logits))

    @staticmethod
    def _ori_size(sample: DetDataSample) -> Tuple[int, int]:
        shape = sample.metainfo.get('ori_shape')
        if shape is None:
            raise ValueError('GLaMM: data sample has no ori_shape metainfo')
        return int(shape[0]), int(shape[1])

    @staticmethod
    def _gt_masks(index: int, sample: DetDataSample,
                  device: torch.device) -> torch.Tensor:
        gt = getattr(sample, 'gt_instances', None)
        masks = getattr(gt, 'masks', None) if gt is not None else None
        if masks is None:
            h, w = GLaMM._ori_size(sample)
            return torch.zeros((0, h, w), device=device)
        if isinstance(masks, torch.Tensor):
            return masks.to(device=device, dtype=torch.float32)
        return masks.to_tensor(dtype=torch.float32, device=device)

    # ---------------------------------------------------------------- loss
    def loss(self, inputs: Dict[str, torch.Tensor],
             data_samples: List[DetDataSample]) -> Dict[str, torch.Tensor]:
        """LM cross-entropy + mask BCE + DICE.

        Returns:
            dict(loss_lm, loss_mask, loss_dice).
        """
        input_ids = inputs['input_ids']
        if inputs.get('labels') is None:
            raise ValueError('GLaMM.loss needs `labels` (the data samples '
                             'carry none: were they tokenized for predict?)')
        feats = self.extract_visual_features(inputs['clip_pixels'])
        embeds = self.embed_inputs(
            input_ids, inputs['clip_pixels'], data_samples, feats=feats)
        out = self.language_model(
            inputs_embeds=embeds,
            attention_mask=inputs.get('attention_mask'),
            labels=inputs['labels'],
            output_hidden_states=True)
        loss_lm = out.loss * self.loss_lm_weight
        if self.region_encoder is not None and not bool(
            (input_ids == self.bbox_token_id).any()):
            touch = self._zero_touch(self.region_encoder)
            if touch is not None:
                loss_lm = loss_lm + touch
        losses = dict(loss_lm=loss_lm)

        seg_hidden = self.seg_hidden_states(out.hidden_states[-1], input_ids)
        gts = []
        for i, (hid, sample) in enumerate(zip(seg_hidden, data_samples)):
            gt = self._gt_masks(i, sample, input_ids.device)
            if gt.shape[0] != hid.shape[0]:
                raise ValueError(
                    f'GLaMM: {_sample_name(i, sample)} has {hid.shape[0]} '
                    f'{self.seg_token} tokens but {gt.shape[0]} gt masks; '
                    'each grounding token needs exactly one target mask')
            gts.append(gt)
        prompts = self._project_seg(seg_hidden)
        logits = self._mask_logits(prompts, inputs['grounding_pixels'],
                                   inputs['grounding_sizes'],
                                   [tuple(g.shape[-2:]) for g in gts])
        for i, pred in logits.items():
            if pred.shape != gts[i].shape:
                raise ValueError(
                    f'GLaMM: {_sample_name(i, data_samples[i])} predicted '
                    f'masks {tuple(pred.shape)} but gt masks are '
                    f'{tuple(gts[i].shape)}')
        idx = sorted(logits)
        mask_losses = self.grounding_head.loss([logits[i] for i in idx],
                                               [gts[i] for i in idx])
        if not idx:
            touch = self._zero_touch(self.seg_projector)
            if touch is not None:
                mask_losses['loss_mask'] = mask_losses['loss_mask'] + touch
        losses.update(mask_losses)
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
        ids = inputs['input_ids']
        mask = inputs.get('attention_mask')
        if mask is None:
            mask = torch.ones_like(ids)
        return [ids[i][mask[i].bool()] for i in idx]

    def generate_batch(self,
                       inputs: Dict[str, torch.Tensor],
                       data_samples: Optional[List[DetDataSample]] = None,
                       **overrides) -> GenerationOutput:
        """Batched KV-cache generation from the prompts in ``inputs``.

        Prompts are re-packed with LEFT padding whatever padding they came
        with. ``overrides`` update ``generation_cfg`` for this call
        (``eos_token_id=None`` disables the eos stop, for benchmarks).
        """
        cfg = dict(self.generation_cfg)
        cfg.setdefault('eos_token_id', self.language_model.eos_token_id)
        cfg.update(overrides)
        rows = self._rows(inputs, range(inputs['input_ids'].shape[0]))
        ids, mask = self._repack_left(rows)
        embeds = self.embed_inputs(ids, inputs['clip_pixels'], data_samples)
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
            hidden_source=self.seg_hidden_source,
            suppress_token_ids=(self.image_token_id, ),
            use_cache=cfg['use_cache'])

    def generate_reference(self,
                           inputs: Dict[str, torch.Tensor],
                           data_samples: Optional[List[DetDataSample]] = None,
                           index: int = 0,
                           max_new_tokens: Optional[int] = None,
                           ignore_eos: bool = False) -> GenerationOutput:
        """The official decoding loop for sample ``index`` (greedy, batch 1,
        no cache, vision tower re-run every step); for checks and the
        benchmark only."""
        ids = self._rows(inputs, [index])[0][None]
        pixels = inputs['clip_pixels'][index:index + 1]
        samples = [data_samples[index]] if data_samples else None

        def build_embeds(cur_ids: torch.Tensor) -> torch.Tensor:
            return self.embed_inputs(cur_ids, pixels, samples)

        return reference_generate(
            build_embeds,
            self.language_model,
            ids,
            max_new_tokens=max_new_tokens
            or self.generation_cfg['max_new_tokens'],
            eos_token_id=None
            if ignore_eos else self.language_model.eos_token_id,
            suppress_token_ids=(self.image_token_id, ))

    def _num_refseg_targets(self, sample: DetDataSample) -> int:
        phrases = sample.metainfo.get('gt_phrases')
        return max(len(phrases), 1) if phrases else 1

    def _teacher_forced(self, inputs: Dict[str, torch.Tensor],
                        data_samples: List[DetDataSample],
                        idx: List[int]) -> Dict[int, tuple]:
        """Official RefSeg evaluation: prompt + answer template, one forward.
        """
        rows, answers = [], []
        for i in idx:
            k = self._num_refseg_targets(data_samples[i])
            answer = inputs['input_ids'].new_tensor(self.refseg_answer_ids * k)
            rows.append(torch.cat([self._rows(inputs, [i])[0], answer]))
            answers.append(answer)
        ids, mask = self._repack_left(rows)
        pixels = inputs['clip_pixels'][idx]
        embeds = self.embed_inputs(ids, pixels, [data_samples[i] for i in idx])
        out = self.language_model(
            inputs_embeds=embeds,
            attention_mask=mask,
            output_hidden_states=True,
            logits_to_keep=1)
        seg_hidden = self.seg_hidden_states(out.hidden_states[-1], ids)
        results = {}
        for j, i in enumerate(idx):
            text = self.tokenizer.decode(
                answers[j].tolist(), skip_special_tokens=False)
            phrases = list(data_samples[i].metainfo.get('gt_phrases') or [])
            results[i] = (text, seg_hidden[j], phrases)
        return results

    def _generated(self, inputs: Dict[str, torch.Tensor],
                   data_samples: List[DetDataSample],
                   idx: List[int]) -> Dict[int, tuple]:
        sub = {
            k: v[idx]
            for k, v in inputs.items() if isinstance(v, torch.Tensor)
        }
        out = self.generate_batch(sub, [data_samples[i] for i in idx])
        specials = [
            t for t in (self.tokenizer.eos_token, self.tokenizer.pad_token,
                        self.tokenizer.bos_token) if t
        ]
        results = {}
        for j, i in enumerate(idx):
            n = int(out.lengths[j])
            ids = out.sequences[j, :n]
            hidden = out.hidden_states[j, :n][ids == self.seg_token_id]
            text = self.tokenizer.decode(
                ids.tolist(), skip_special_tokens=False)
            for tok in specials:
                text = text.replace(tok, ' ')
            for stop in self.generation_cfg.get('stop_strings') or ():
                if stop in text:
                    text = text[:text.index(stop)]
            text = ' '.join(text.split())
            _, phrases = parse_glamm_answer(text)
            results[i] = (text, hidden, phrases)
        return results

    @torch.no_grad()
    def predict(self, inputs: Dict[str, torch.Tensor],
                data_samples: List[DetDataSample]) -> List[DetDataSample]:
        """Answer every sample and ground each generated ``[SEG]``.

        Fills, per data contract §4: ``pred_text``, ``pred_caption``,
        ``pred_phrases`` and ``pred_instances`` (``masks`` bool [M, H, W] at
        original size, ``bboxes`` [M, 4] from the masks, ``scores`` [M] =
        mean sigmoid inside the mask, ``labels`` zeros), one instance per
        ``[SEG]`` in order.
        """
        num = inputs['input_ids'].shape[0]
        tf_idx = [
            i for i in range(num) if self.refseg_teacher_forcing
            and data_samples[i].metainfo.get('task') == 'refseg'
        ]
        gen_idx = [i for i in range(num) if i not in tf_idx]
        results = {}
        if tf_idx:
            results.update(self._teacher_forced(inputs, data_samples, tf_idx))
        if gen_idx:
            results.update(self._generated(inputs, data_samples, gen_idx))

        ori_sizes = [self._ori_size(s) for s in data_samples]
        prompts = self._project_seg([results[i][1] for i in range(num)])
        logits = self._mask_logits(prompts, inputs['grounding_pixels'],
                                   inputs['grounding_sizes'], ori_sizes)
        device = inputs['input_ids'].device
        for i, sample in enumerate(data_samples):
            text, _, phrases = results[i]
            caption, _ = parse_glamm_answer(text)
            sample.pred_text = text
            sample.pred_caption = caption
            sample.pred_phrases = phrases
            sample.pred_instances = self._instances(
                logits.get(i), ori_sizes[i], device)
        return data_samples

    @staticmethod
    def _instances(logits: Optional[torch.Tensor], size: Tuple[int, int],
                   device: torch.device) -> InstanceData:
        inst = InstanceData()
        if logits is None:
            h, w = size
            inst.masks = torch.zeros((0, h, w),
                                     dtype=torch.bool,
                                     device=device)
            inst.bboxes = torch.zeros((0, 4), device=device)
            inst.scores = torch.zeros((0, ), device=device)
            inst.labels = torch.zeros((0, ), dtype=torch.long, device=device)
            return inst
        logits = logits.float()
        masks = logits > 0
        probs = logits.sigmoid()
        area = masks.flatten(1).sum(1)
        scores = (probs * masks).flatten(1).sum(1) / area.clamp(min=1)
        inst.masks = masks
        inst.bboxes = mask2bbox(masks).float()
        inst.scores = scores
        inst.labels = torch.zeros((masks.shape[0], ),
                                  dtype=torch.long,
                                  device=masks.device)
        return inst

    # -------------------------------------------------------------- tensor
    def _forward(
            self,
            inputs: Dict[str, torch.Tensor],
            data_samples: Optional[List[DetDataSample]] = None
    ) -> torch.Tensor:
        """LM logits [B, L, V] for the given (teacher-forced) sequences."""
        embeds = self.embed_inputs(inputs['input_ids'], inputs['clip_pixels'],
                                   data_samples)
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
        raise RuntimeError(f'GLaMM: invalid mode {mode!r}; only "loss", '
                           '"predict" and "tensor" are supported')
