"""Tiny and full-size LLaVA-Grounding configs and fake batches for tests.

The tiny model is the 7B graph at toy sizes (``llava_g_design.md`` §8): a
2-layer CLIP, one Linear projector, a tiny Llama and the tiny OpenSeeD head
reading the raw ``<seg>`` states (``prompt_dim`` = LM width).
"""
import copy
from typing import List, Optional, Sequence, Tuple

import torch

from .models import VICUNA_7B, tiny_llama_cfg

#: transformers config of CLIP ViT-L/14 at 224 px (LLaVA-G's vision tower).
CLIP_L_224 = dict(
    type='CLIPVisionConfig',
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    projection_dim=768)


def tiny_llava_g_cfg(tokenizer_dir: str,
                     clip_size: int = 64,
                     clip_hidden: int = 64,
                     llm_hidden: int = 128,
                     llm_layers: int = 2,
                     grounding_size: int = 128,
                     head: Optional[dict] = None,
                     **model_kwargs) -> dict:
    """Full ``LLaVAGrounding`` config of a tiny random model.

    Args:
        tokenizer_dir: tokenizer directory (``build_tiny_tokenizer``).
        head: grounding-head config (default: ``tiny_openseed_head_cfg``
            with ``prompt_dim=llm_hidden``).
        **model_kwargs: further ``LLaVAGrounding`` arguments.
    """
    from mmgrounding.models.grounding_heads.openseed_grounding_head import \
        tiny_openseed_head_cfg
    from transformers import AutoTokenizer
    pad_id = AutoTokenizer.from_pretrained(
        tokenizer_dir, local_files_only=True).pad_token_id
    cfg = dict(
        type='LLaVAGrounding',
        data_preprocessor=dict(
            type='GroundingDataPreprocessor',
            clip_size=clip_size,
            clip_mode='resize',
            grounding_size=grounding_size,
            pad_token_id=0 if pad_id is None else pad_id),
        vision_encoder=dict(
            type='HFVisionEncoder',
            config=dict(
                type='CLIPVisionConfig',
                hidden_size=clip_hidden,
                intermediate_size=2 * clip_hidden,
                num_hidden_layers=2,
                num_attention_heads=4,
                image_size=clip_size,
                patch_size=16),
            select_layers=(-2, )),
        projector=dict(
            type='MLPProjector',
            in_channels=clip_hidden,
            out_channels=llm_hidden,
            num_layers=1),
        language_model=tiny_llama_cfg(
            tokenizer_dir,
            num_layers=llm_layers,
            hidden_size=llm_hidden,
            intermediate_size=2 * llm_hidden),
        grounding_head=head or tiny_openseed_head_cfg(prompt_dim=llm_hidden))
    cfg.update(model_kwargs)
    return cfg


def llava_g_7b_cfg(tokenizer_dir: str) -> dict:
    """The official LLaVA-G-7B graph from architecture configs (no weights):
    CLIP-L/14-224 (layer -2), Linear(1024, 4096), Vicuna-7B fully trainable
    (stage 2), the Swin-T OpenSeeD head. Build it on ``meta``."""
    return dict(
        type='LLaVAGrounding',
        vision_encoder=dict(
            type='HFVisionEncoder',
            config=copy.deepcopy(CLIP_L_224),
            select_layers=(-2, )),
        projector=dict(
            type='MLPProjector',
            in_channels=1024,
            out_channels=4096,
            num_layers=1),
        language_model=dict(
            type='HFCausalLM',
            config=dict(VICUNA_7B),
            tokenizer=dict(pretrained_model_name_or_path=tokenizer_dir),
            special_tokens=('<g_s>', '<g_e>', '<seg>', '<obj>', '<image>'),
            lora=None),
        grounding_head=dict(type='OpenSeeDGroundingHead', prompt_dim=4096))


def make_llava_g_batch(model,
                       prompts: Sequence[str],
                       answers: Optional[Sequence[str]] = None,
                       ori_sizes: Optional[Sequence[Tuple[int, int]]] = None,
                       token_instances: Optional[Sequence[List[List[int]]]] =
                       None,
                       seed: int = 0):
    """``make_glamm_batch`` with LLaVA-G set targets added.

    Each sample gets ``gt_objects`` (masks and boxes) and
    ``grounding_instance_ids``: by default one object per ``<seg>`` (the
    random rectangle of ``make_glamm_batch``); ``token_instances[i]`` maps
    the tokens of sample i onto those objects instead (e.g. ``[[0, 1]]``:
    one ``<seg>`` grounding two objects).
    """
    from mmdet.structures.mask import mask2bbox
    from mmengine.structures import InstanceData

    from .samples import make_glamm_batch
    inputs, samples = make_glamm_batch(
        model, prompts, answers=answers, ori_sizes=ori_sizes, seed=seed)
    for i, sample in enumerate(samples):
        masks = sample.gt_instances.masks
        objects = InstanceData()
        objects.masks = masks
        objects.bboxes = mask2bbox(torch.from_numpy(masks.masks).bool()) \
            if len(masks) else torch.zeros((0, 4))
        objects.labels = torch.zeros(len(masks), dtype=torch.long)
        sample.gt_objects = objects
        sample.grounding_instance_ids = [list(ids) for ids in (
            token_instances[i] if token_instances is not None else
            [[k] for k in range(len(masks))])]
        sample.gt_instances.bboxes = objects.bboxes
    return inputs, samples


__all__ = [
    'CLIP_L_224', 'tiny_llava_g_cfg', 'llava_g_7b_cfg', 'make_llava_g_batch'
]
