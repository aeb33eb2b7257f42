"""Tiny model configs for tests and the synthetic world.

The tiny models run exactly the code paths of the 7B configs; only the sizes
differ (see ``shared/reference/tiny_models.md`` for the measured facts these
defaults follow: SAM ``initializer_range`` 0.02, channel agreement, BN1d
before the ``[SEG]`` projection).
"""
import copy
from typing import Optional

from .tokenizer import build_tiny_tokenizer

TINY_LLAMA = dict(
    type='LlamaConfig',
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=512,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=3)

#: Vicuna-7B v1.5 (Llama-2 7B) architecture, for the full-size graph test.
VICUNA_7B = dict(
    type='LlamaConfig',
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0)

#: The official GLaMM LoRA: r 8, alpha 16, dropout 0.05, q and v projections.
GLAMM_LORA = dict(
    r=8, lora_alpha=16, lora_dropout=0.05, target_modules=['q_proj', 'v_proj'])


def tiny_llama_cfg(tokenizer_dir: str,
                   lora: Optional[dict] = None,
                   num_layers: int = 2,
                   **llama_overrides) -> dict:
    """``HFCausalLM`` config of a randomly initialised tiny Llama.

    The vocabulary is the tokenizer's (``vocab_size`` left to the model) and
    grows by the special tokens the model adds.
    """
    llama = copy.deepcopy(TINY_LLAMA)
    llama['num_hidden_layers'] = num_layers
    llama.update(llama_overrides)
    return dict(
        type='HFCausalLM',
        config=llama,
        tokenizer=dict(pretrained_model_name_or_path=tokenizer_dir),
        lora=copy.deepcopy(lora),
        trainable=('embed_tokens', 'lm_head'),
        attn_implementation='sdpa')


def build_tiny_llama(save_dir: str,
                     tokenizer_dir: Optional[str] = None,
                     seed: int = 0,
                     **llama_overrides):
    """Save a random tiny ``LlamaForCausalLM`` (+ tokenizer) to ``save_dir``.

    Lets tests exercise the ``pretrained_model_name_or_path`` (offline
    ``from_pretrained``) path. A tiny tokenizer is built into ``save_dir``
    when ``tokenizer_dir`` is None.

    Returns:
        The saved model.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    if tokenizer_dir is None:
        tokenizer = build_tiny_tokenizer(save_dir)
    else:
        tokenizer = AutoTokenizer.from_pretrained(
            tokenizer_dir, local_files_only=True)
        tokenizer.save_pretrained(save_dir)
    cfg = copy.deepcopy(TINY_LLAMA)
    cfg.pop('type')
    cfg.update(llama_overrides)
    cfg.setdefault('vocab_size', len(tokenizer))
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    model.save_pretrained(save_dir)
    return model


def tiny_sam_cfg(image_size: int = 128,
                 vision_hidden: int = 64,
                 channels: int = 128) -> dict:
    """``SamConfig`` kwargs of a tiny SAM (all-global attention).

    ``channels`` is shared by the vision neck output, the prompt encoder
    and the mask decoder (= 2 x ``num_pos_feats``), as SAM requires.
    """
    return dict(
        type='SamConfig',
        vision_config=dict(
            hidden_size=vision_hidden,
            output_channels=channels,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=16,
            mlp_dim=2 * vision_hidden,
            global_attn_indexes=[0, 1],
            window_size=0,
            num_pos_feats=channels // 2,
            initializer_range=0.02),
        prompt_encoder_config=dict(
            hidden_size=channels,
            image_size=image_size,
            patch_size=16,
            mask_input_channels=16),
        mask_decoder_config=dict(
            hidden_size=channels,
            num_hidden_layers=2,
            num_attention_heads=4,
            mlp_dim=2 * channels,
            iou_head_hidden_dim=channels))


def tiny_glamm_cfg(tokenizer_dir: str,
                   lora: Optional[dict] = None,
                   llm_layers: int = 2,
                   clip_size: int = 64,
                   clip_hidden: int = 64,
                   llm_hidden: int = 128,
                   grounding_size: int = 128,
                   seg_norm: Optional[str] = 'BN1d',
                   region_encoder: bool = True,
                   data_preprocessor: Optional[dict] = None,
                   **glamm_kwargs) -> dict:
    """Full ``GLaMM`` config of a tiny random model (a few M parameters).

    CLIP: ``clip_size`` px, patch 16, ``clip_hidden`` wide, 2 layers; its
    hidden states 0 and 1 feed the region encoder and state 1 (the
    penultimate) the image tokens. Llama: ``llm_hidden`` wide, 4 heads,
    FFN 2x, ``llm_layers`` layers, the tokenizer's vocabulary. SAM: see
    :func:`tiny_sam_cfg` (prompt size 128). The [SEG] projector has a BN1d
    input norm by default (``tiny_models.md``: it keeps prompts apart).

    Args:
        tokenizer_dir: tokenizer directory (``build_tiny_tokenizer``).
        lora: LoRA kwargs for the LM (None: no LoRA).
        data_preprocessor: the model's data preprocessor config (None: a
            ``GroundingDataPreprocessor`` with the tiny view sizes, a square
            CLIP resize and the tokenizer's pad id).
        **glamm_kwargs: further ``GLaMM`` arguments (``generation_cfg``,
            ``train_seg_hidden_source`` ...).
    """
    prompt_channels = 128
    cfg = dict(
        type='GLaMM',
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
            select_layers=(-3, -2),
            trainable=False),
        projector=dict(
            type='MLPProjector',
            in_channels=clip_hidden,
            out_channels=llm_hidden,
            hidden_channels=llm_hidden,
            act='GELU'),
        language_model=tiny_llama_cfg(
            tokenizer_dir,
            lora=lora,
            num_layers=llm_layers,
            hidden_size=llm_hidden,
            intermediate_size=2 * llm_hidden),
        seg_projector=dict(
            type='MLPProjector',
            in_channels=llm_hidden,
            out_channels=prompt_channels,
            hidden_channels=llm_hidden,
            act='ReLU',
            norm=seg_norm),
        grounding_head=dict(
            type='SAMGroundingHead',
            sam=dict(
                config=tiny_sam_cfg(grounding_size, channels=prompt_channels)),
            prompt_channels=prompt_channels,
            image_size=grounding_size),
        image_feature_level=-1)
    if region_encoder:
        cfg['region_encoder'] = dict(
            type='GLaMMRegionEncoder',
            in_channels=clip_hidden,
            out_channels=llm_hidden,
            num_levels=2,
            image_size=clip_size,
            roi_size=4,
            query_channels=clip_hidden,
            pos_hidden_channels=32,
            num_fuse=2,
            norm_cfg=dict(type='GN', num_groups=8))
    if data_preprocessor is None:
        from transformers import AutoTokenizer
        pad_id = AutoTokenizer.from_pretrained(
            tokenizer_dir, local_files_only=True).pad_token_id
        data_preprocessor = dict(
            type='GroundingDataPreprocessor',
            clip_size=clip_size,
            clip_mode='resize',
            grounding_size=grounding_size,
            pad_token_id=0 if pad_id is None else pad_id)
    cfg['data_preprocessor'] = data_preprocessor
    cfg.update(glamm_kwargs)
    return cfg


#: transformers configs of the official GLaMM-7B towers (architecture only).
CLIP_L_336 = dict(
    type='CLIPVisionConfig',
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=336,
    patch_size=14,
    projection_dim=768)
SAM_VIT_H = dict(
    type='SamConfig',
    vision_config=dict(
        hidden_size=1280,
        num_hidden_layers=32,
        num_attention_heads=16,
        mlp_dim=5120,
        global_attn_indexes=[7, 15, 23, 31],
        window_size=14,
        output_channels=256,
        image_size=1024,
        patch_size=16))


def glamm_7b_cfg(tokenizer_dir: str, lora: Optional[dict] = GLAMM_LORA) -> dict:
    """The official GLaMM-7B graph from architecture configs (no weights).

    Build it under ``torch.device('meta')``; ``tokenizer_dir`` holds a
    32000-token Vicuna-sized tokenizer (``build_tiny_tokenizer(...,
    vocab_size=32000, include_model_tokens=False)``).
    """
    h = 4096
    return dict(
        type='GLaMM',
        vision_encoder=dict(
            type='HFVisionEncoder',
            config=copy.deepcopy(CLIP_L_336),
            select_layers=(-11, -8, -5, -2)),
        projector=dict(
            type='MLPProjector',
            trainable=False,  # official with LoRA: mm_projector frozen
            in_channels=1024,
            out_channels=h,
            hidden_channels=h,
            act='GELU'),
        language_model=dict(
            type='HFCausalLM',
            config=dict(VICUNA_7B),
            tokenizer=dict(pretrained_model_name_or_path=tokenizer_dir),
            lora=copy.deepcopy(lora)),
        region_encoder=dict(
            type='GLaMMRegionEncoder',
            in_channels=1024,
            out_channels=h,
            num_levels=4,
            image_size=336,
            roi_size=14,
            query_channels=1024,
            pos_hidden_channels=256,
            num_fuse=5,
            norm_cfg=dict(type='GN', num_groups=64)),
        seg_projector=dict(
            type='MLPProjector',
            in_channels=h,
            out_channels=256,
            hidden_channels=h,
            act='ReLU'),
        grounding_head=dict(
            type='SAMGroundingHead',
            sam=dict(config=copy.deepcopy(SAM_VIT_H))))
