"""GLaMM: a pixel-grounding LMM wired from swappable parts.

CLIP patch features (projected) fill the ``<image>`` placeholders, region
features (RoIAlign over several CLIP levels) fill ``<bbox>`` placeholders,
the causal LM reads the sequence, and the hidden state behind each ``[SEG]``
becomes, through ``seg_projector``, the prompt of the grounding head (a SAM
mask decoder in the paper). Everything model-neutral lives in
:class:`~mmgrounding.models.lmms.base.BaseGroundedLMM`; this file holds what
is GLaMM's: its region-encoder wiring and its teacher-forced RefSeg
evaluation.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.structures import DetDataSample

from mmgrounding.registry import MODELS
from .base import Answer, BaseGroundedLMM, PromptSlot


@MODELS.register_module()
class GLaMM(BaseGroundedLMM):
    """GLaMM (Rasheed et al., CVPR 2024) as an mmengine model.

    Args:
        vision_encoder: config of a vision encoder returning a tuple of
            patch features [B, N, C] (e.g. ``HFVisionEncoder``).
        projector: vision -> LM projection (``MLPProjector``).
        language_model: ``HFCausalLM`` config; its tokenizer must hold the
            image, bbox and seg tokens.
        seg_projector: LM hidden -> head prompt embedding (the official
            ``text_hidden_fcs``: 4096 -> 4096 -> 256); None = identity.
        grounding_head: any head of the grounding-head contract
            (``SAMGroundingHead`` in the paper; its losses carry the mask
            BCE 2.0 and DICE 0.5 weights).
        region_encoder: optional config of the ``<bbox>`` prompt encoder
            (``GLaMMRegionEncoder`` in the paper; any prompt encoder of the
            ``PromptSlot`` contract swaps in, e.g. a
            ``SemanticSAMPromptEncoder`` with ``region_view=
            'grounding_pixels'`` and ``region_prompts=
            'visual_prompts_grounding'``).
        region_view: image view the region encoder reads (default
            ``'region_feats'``: the CLIP levels of ``region_feature_levels``;
            see :meth:`image_views`).
        region_prompts: data-sample field with each ``<bbox>``'s prompt in
            that view (default ``'region_bboxes_clip'``: CLIP-view boxes
            [R, 4] from the data preprocessor).
        data_preprocessor: ``GroundingDataPreprocessor`` config.
        loss_lm_weight: weight of the next-token cross-entropy.
        image_feature_level: which of the vision encoder's outputs fills the
            image tokens (official: CLIP's penultimate layer).
        region_feature_levels: which outputs the region encoder reads
            (None = all).
        train_seg_hidden_source, test_seg_hidden_source: ``'preceding'``
            (official: the hidden state of the token before ``[SEG]``, whose
            logits predict it) or ``'self'`` (the state at ``[SEG]``).
        teacher_forced_tasks: tasks read from a given answer instead of
            generated (see :class:`BaseGroundedLMM`).
        refseg_teacher_forcing: evaluate ``task == 'refseg'`` samples as the
            official RefSeg evaluation does: one forward over the prompt plus
            ``refseg_answer`` (one copy per expected target), no generation.
        refseg_answer: the teacher-forced answer; must contain the seg token.
            A ``{phrase}`` in it is replaced by each target's expression
            (``gt_phrases``), for recipes trained to echo the expression
            before ``[SEG]`` (e.g. ``'Sure, it is <p> {phrase} </p> [SEG].'``).
        generation_cfg: ``max_new_tokens``, ``do_sample``, ``temperature``,
            ``top_p``, ``stop_strings``, ``seed``, ``use_cache``.
        image_token, bbox_token, seg_token: token names (ids are looked up).
    """
    answer_style = 'glamm'

    def __init__(self,
                 vision_encoder: dict,
                 projector: dict,
                 language_model: dict,
                 seg_projector: Optional[dict],
                 grounding_head: dict,
                 region_encoder: Optional[dict] = None,
                 region_view: str = 'region_feats',
                 region_prompts: str = 'region_bboxes_clip',
                 data_preprocessor: Optional[dict] = None,
                 loss_lm_weight: float = 1.0,
                 image_feature_level: int = -1,
                 region_feature_levels: Optional[Sequence[int]] = None,
                 train_seg_hidden_source: str = 'preceding',
                 test_seg_hidden_source: str = 'preceding',
                 refseg_teacher_forcing: bool = True,
                 refseg_answer: str = 'Sure, it is [SEG].',
                 generation_cfg: Optional[dict] = None,
                 image_token: str = '<image>',
                 bbox_token: str = '<bbox>',
                 seg_token: str = '[SEG]',
                 teacher_forced_tasks: Sequence[str] = (),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            vision_encoder=vision_encoder,
            projector=projector,
            language_model=language_model,
            grounding_head=grounding_head,
            seg_projector=seg_projector,
            prompt_encoders=dict(region_encoder=region_encoder),
            prompt_slots={
                bbox_token:
                PromptSlot(
                    encoder='region_encoder',
                    view=region_view,
                    prompts=region_prompts)
            },
            data_preprocessor=data_preprocessor,
            loss_lm_weight=loss_lm_weight,
            image_feature_level=image_feature_level,
            train_seg_hidden_source=train_seg_hidden_source,
            test_seg_hidden_source=test_seg_hidden_source,
            generation_cfg=generation_cfg,
            image_token=image_token,
            seg_token=seg_token,
            teacher_forced_tasks=teacher_forced_tasks,
            init_cfg=init_cfg)
        self.region_feature_levels = None if region_feature_levels is None \
            else tuple(region_feature_levels)
        self.bbox_token_id = self.prompt_token_ids[bbox_token]
        self.refseg_teacher_forcing = refseg_teacher_forcing
        self.refseg_answer = refseg_answer
        if self.seg_token_id not in self._refseg_answer_ids('x'):
            raise ValueError(f'GLaMM: refseg_answer {refseg_answer!r} has '
                             f'no {seg_token} token')

    def image_views(self, inputs: Dict[str, Any],
                    feats: Tuple[torch.Tensor, ...]) -> Dict[str, Any]:
        """Adds ``region_feats``: the CLIP levels the region encoder pools
        (``region_feature_levels``, all by default)."""
        views = super().image_views(inputs, feats)
        views['region_feats'] = feats \
            if self.region_feature_levels is None else [
                feats[k] for k in self.region_feature_levels]
        return views

    # ---------------------------------------------------- RefSeg (official)
    def _refseg_answer_ids(self, phrase: str) -> List[int]:
        """Token ids of ``refseg_answer`` with ``{phrase}`` filled in."""
        text = self.refseg_answer.replace('{phrase}', phrase)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _refseg_answer(self, sample: DetDataSample) -> List[int]:
        """The teacher-forced answer ids: one template per expected target
        (per ``gt_phrases`` entry, at least one)."""
        phrases = list(sample.metainfo.get('gt_phrases') or [])
        if '{phrase}' in self.refseg_answer and not phrases:
            raise ValueError('GLaMM: refseg_answer has {phrase} but the '
                             'sample has no gt_phrases')
        ids: List[int] = []
        for phrase in phrases or ['']:
            ids += self._refseg_answer_ids(phrase)
        return ids

    def teacher_forced_answers(self, inputs: Dict[str, torch.Tensor],
                               data_samples: List[DetDataSample],
                               idx: List[int]) -> Dict[int, Answer]:
        """Official RefSeg evaluation: prompt + answer template, one forward.

        The answer holds ``refseg_answer`` once per expected target; only
        the grounding tokens of this appended answer are read (a
        multi-round prompt may contain earlier rounds' ``[SEG]``).
        """
        rows, answers = [], []
        for i in idx:
            answer = inputs['input_ids'].new_tensor(
                self._refseg_answer(data_samples[i]))
            rows.append(torch.cat([self._rows(inputs, [i])[0], answer]))
            answers.append(answer)
        # only the appended answer's grounding tokens are read
        readable = [
            torch.arange(len(row)) >= len(row) - answer.numel()
            for row, answer in zip(rows, answers)
        ]
        states = self.forced_states(inputs, data_samples, idx, rows,
                                    readable)
        results = {}
        for j, i in enumerate(idx):
            text = self.tokenizer.decode(
                answers[j].tolist(), skip_special_tokens=False)
            phrases = list(data_samples[i].metainfo.get('gt_phrases') or [])
            results[i] = Answer(text, states[j], phrases)
        return results

    def answer(self, inputs: Dict[str, torch.Tensor],
               data_samples: List[DetDataSample]) -> Dict[int, Answer]:
        """RefSeg samples teacher-forced (when enabled), others generated."""
        num = len(data_samples)
        tf_idx = [
            i for i in range(num) if self.refseg_teacher_forcing
            and data_samples[i].metainfo.get('task') == 'refseg'
        ]
        gen_idx = [i for i in range(num) if i not in tf_idx]
        results = {}
        if tf_idx:
            results.update(
                self.teacher_forced_answers(inputs, data_samples, tf_idx))
        if gen_idx:
            results.update(self.answer_samples(inputs, data_samples, gen_idx))
        return results


__all__ = ['GLaMM']
