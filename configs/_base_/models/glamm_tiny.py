# Tiny GLaMM (~3 M parameters): the exact 7B code paths at toy sizes, for the
# synthetic world (128 px images). See shared facts in
# ../shared/reference/tiny_models.md for why the sizes are what they are.
# The seg projector, region encoder and SAM head are ./tiny_parts/'s
# (shared with the swaps of configs/swaps/).
_base_ = [
    './tiny_parts/seg_projector.py', './tiny_parts/region_encoder.py',
    './tiny_parts/sam_head.py'
]
tiny_llm_tokenizer_dir = 'data/synthetic/tokenizer'
image_size = 128
clip_size = 128
clip_hidden = 128
llm_hidden = 128

model = dict(
    type='GLaMM',
    data_preprocessor=dict(
        type='GroundingDataPreprocessor',
        clip_size=clip_size,
        clip_mode='resize',
        grounding_size=image_size,
        pad_token_id=3),
    vision_encoder=dict(
        type='HFVisionEncoder',
        config=dict(
            type='CLIPVisionConfig',
            hidden_size=clip_hidden,
            intermediate_size=2 * clip_hidden,
            num_hidden_layers=3,
            num_attention_heads=4,
            image_size=clip_size,
            patch_size=16),
        select_layers=(-3, -2),  # region levels; -2 (penultimate) -> LLM
        trainable=True),  # random tiny tower: it has to learn (7B: frozen)
    projector=dict(
        type='MLPProjector',
        in_channels=clip_hidden,
        out_channels=llm_hidden,
        hidden_channels=llm_hidden,
        act='GELU'),
    language_model=dict(
        type='HFCausalLM',
        config=dict(
            type='LlamaConfig',
            hidden_size=llm_hidden,
            intermediate_size=2 * llm_hidden,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=512,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False),
        tokenizer=dict(pretrained_model_name_or_path=tiny_llm_tokenizer_dir),
        lora=None,  # a randomly initialised LM trains fully
        trainable='all',
        attn_implementation='sdpa'),
    seg_projector={{_base_.tiny_seg_projector}},
    region_encoder={{_base_.tiny_region_encoder}},
    grounding_head={{_base_.tiny_sam_head}},
    image_feature_level=-1,
    train_seg_hidden_source='preceding',
    test_seg_hidden_source='preceding',
    generation_cfg=dict(max_new_tokens=48, do_sample=False))
