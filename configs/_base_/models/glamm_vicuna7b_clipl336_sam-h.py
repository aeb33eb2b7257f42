# GLaMM-7B (paper + official release): CLIP ViT-L/14-336 (penultimate layer,
# 576 patches) -> Linear-GELU-Linear -> Vicuna-7B v1.5 with LoRA r=8,
# alpha=16 on q,v -> [SEG] state -> 4096-4096-256 MLP -> SAM ViT-H prompt;
# region encoder: RoIAlign over 4 CLIP layers. Every part is loaded from a
# LOCAL directory (nothing is downloaded): put the HF checkpoints there or
# change the paths.
clip_path = 'checkpoints/clip-vit-large-patch14-336'
llm_path = 'checkpoints/vicuna-7b-v1.5'
sam_path = 'checkpoints/sam-vit-huge'  # transformers SamModel directory

model = dict(
    type='GLaMM',
    data_preprocessor=dict(
        type='GroundingDataPreprocessor',
        clip_size=336,
        clip_mode='crop',  # CLIPImageProcessor: shortest side + centre crop
        grounding_size=1024,  # SAM: longest side 1024, padded
        # official region frame (official_releases.md §1.7): region boxes
        # scaled to 336 with independent x / y factors, whatever the centre
        # crop; 'view' (the image's own resize + crop) is this project's
        # option for models trained here
        region_box_mode='stretch',
        pad_token_id=0),  # Vicuna: pad = unk (id 0)
    vision_encoder=dict(
        type='HFVisionEncoder',
        pretrained_model_name_or_path=clip_path,
        # region encoder levels (finest first); -2 also feeds the LLM
        select_layers=(-11, -8, -5, -2),
        trainable=False),
    projector=dict(
        type='MLPProjector',
        trainable=False,  # official with LoRA: mm_projector frozen
        in_channels=1024,
        out_channels=4096,
        hidden_channels=4096,
        act='GELU'),
    language_model=dict(
        type='HFCausalLM',
        pretrained_model_name_or_path=llm_path,
        tokenizer=dict(
            pretrained_model_name_or_path=llm_path, model_max_length=1536),
        # special_tokens: HFCausalLM's default, the GLaMM constant
        # mmgrounding.structures.markup.GLAMM_SPECIAL_TOKENS
        lora=dict(
            r=8,
            lora_alpha=16,
            lora_dropout=0.05,
            target_modules=['q_proj', 'v_proj']),
        trainable=('embed_tokens', 'lm_head'),  # official: full rows train
        gradient_checkpointing=True,
        torch_dtype='bfloat16'),
    region_encoder=dict(
        type='GLaMMRegionEncoder',
        in_channels=1024,
        out_channels=4096,
        num_levels=4,
        image_size=336,
        roi_size=14,
        query_channels=1024,
        pos_hidden_channels=256,
        num_fuse=5,
        norm_cfg=dict(type='GN', num_groups=64),
        # official: the [0, 1] boxes x 224 on maps spanning 336 px (RoIs in
        # the top-left 224 / 336, as the released weights were trained);
        # None places RoIs at the boxes' true positions (our option)
        roi_box_scale=224),
    seg_projector=dict(
        type='MLPProjector',
        in_channels=4096,
        out_channels=256,
        hidden_channels=4096,
        act='ReLU'),
    grounding_head=dict(
        type='SAMGroundingHead',
        sam=dict(pretrained_model_name_or_path=sam_path),
        prompt_channels=256,
        image_size=1024,
        trainable=('mask_decoder', )),  # SAM ViT-H and prompt enc. frozen
    image_feature_level=-1,
    region_feature_levels=(0, 1, 2, 3),
    # official (maintainers, issue #16): the state before [SEG], both ways
    train_seg_hidden_source='preceding',
    test_seg_hidden_source='preceding',
    generation_cfg=dict(max_new_tokens=512, do_sample=False))
