"""LLaVA-Grounding: grounded visual chat, wired from the shared parts.

CLIP patch features (layer -2, 256 tokens at 224 px) pass one Linear into
the LM; the answer marks phrases as ``<g_s> phrase <g_e> <seg>``; the raw
last-layer LM state of each ``<seg>`` queries an OpenSeeD grounding model
(``OpenSeeDGroundingHead``: the class score is the similarity of a decoder
query to that state, so there is no seg projector); ``<obj>`` placeholders
in the question take the embedding of a visual-prompt encoder. Everything
model-neutral lives in :class:`~mmgrounding.models.lmms.base.BaseGroundedLMM`;
this file only states LLaVA-G's choices.
"""
from typing import Optional, Sequence

from mmgrounding.registry import MODELS
from .base import BaseGroundedLMM, PromptSlot


@MODELS.register_module()
class LLaVAGrounding(BaseGroundedLMM):
    """LLaVA-Grounding (Zhang et al., 2023) as an mmengine model.

    Args:
        vision_encoder: vision encoder config (official: CLIP ViT-L/14 at
            224 px, penultimate layer, 256 patch tokens).
        projector: vision -> LM projection (official: one
            ``Linear(1024, 4096)``, ``MLPProjector(num_layers=1)``).
        language_model: ``HFCausalLM`` config; its tokenizer must hold
            ``<g_s>``, ``<g_e>``, ``<seg>`` (added in that order: ids
            32000-32002 on Vicuna), ``<obj>`` and ``<image>``.
        grounding_head: a grounding-head config (``OpenSeeDGroundingHead``
            in the paper; any head of the contract swaps in, e.g. a SAM
            head behind a ``seg_projector``).
        seg_projector: ``None`` (official: the head reads the raw 4096-d
            ``<seg>`` states) or a projector for a head that needs one.
        prompt_encoder: config of the ``<obj>`` visual-prompt encoder
            (Semantic-SAM style); ``None`` = a model without visual prompts
            (stages 1-2), which refuses inputs holding ``<obj>``.
        prompt_view: image view the prompt encoder reads (see
            :meth:`BaseGroundedLMM.image_views`).
        prompts_field: data-sample field with the prompts of each ``<obj>``
            in that view (``GroundingDataPreprocessor`` writes it).
        train_seg_hidden_source: ``'self'``: the official training reads the
            state AT ``<seg>`` (``argwhere(labels == <seg>)``).
        test_seg_hidden_source: the official inference reads the state of
            the step that PREDICTS ``<seg>`` (``'preceding'``); ``'self'``
            matches training (one more cached step per ``<seg>``).
        data_preprocessor, loss_lm_weight, image_feature_level,
        generation_cfg, image_token, init_cfg: see
            :class:`BaseGroundedLMM`.
        seg_token, obj_token: token names (ids are looked up).
        teacher_forced_tasks: tasks read from a given answer instead of
            generated (see :class:`BaseGroundedLMM`; Flickr30K test view:
            ``('phrase_grounding', )``).
        grounding_loss: False skips the grounding head's losses (official
            stage 3: only the prompt encoder and ``<obj>`` answers train; its
            own losses come from ``prompt_encoder.loss_and_embed``).
    """
    answer_style = 'llava_g'

    def __init__(self,
                 vision_encoder: dict,
                 projector: dict,
                 language_model: dict,
                 grounding_head: dict,
                 seg_projector: Optional[dict] = None,
                 prompt_encoder: Optional[dict] = None,
                 prompt_view: str = 'grounding_pixels',
                 prompts_field: str = 'visual_prompts_grounding',
                 data_preprocessor: Optional[dict] = None,
                 loss_lm_weight: float = 1.0,
                 image_feature_level: int = -1,
                 train_seg_hidden_source: str = 'self',
                 test_seg_hidden_source: str = 'preceding',
                 generation_cfg: Optional[dict] = None,
                 image_token: str = '<image>',
                 seg_token: str = '<seg>',
                 obj_token: str = '<obj>',
                 grounding_loss: bool = True,
                 teacher_forced_tasks: Sequence[str] = (),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            vision_encoder=vision_encoder,
            projector=projector,
            language_model=language_model,
            grounding_head=grounding_head,
            seg_projector=seg_projector,
            prompt_encoders=dict(prompt_encoder=prompt_encoder),
            prompt_slots={
                obj_token:
                PromptSlot(
                    encoder='prompt_encoder',
                    view=prompt_view,
                    prompts=prompts_field)
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
        self.grounding_loss = grounding_loss
        head_dim = getattr(self.grounding_head, 'prompt_dim', None)
        lm_dim = self.language_model.hidden_size
        if seg_projector is None and head_dim not in (None, lm_dim):
            raise ValueError(
                f'LLaVAGrounding: without a seg_projector the head reads the '
                f'raw {lm_dim}-d LM states but its prompt_dim is {head_dim}; '
                f'set grounding_head.prompt_dim={lm_dim} or add a '
                'seg_projector')


__all__ = ['LLaVAGrounding']
