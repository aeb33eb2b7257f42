# Tiny LLaVA-Grounding (~2 M parameters): the 7B graph at toy sizes for the
# synthetic world (128 px). CLIP (trained: it is random) -> one Linear ->
# tiny Llama -> raw <seg> states -> tiny OpenSeeD head (Swin 1-1-1-1,
# d = 32, 20 queries; llava_g_design.md §8).
tiny_llm_tokenizer_dir = 'data/synthetic/tokenizer'
image_size = 128
clip_size = 128
clip_hidden = 128
llm_hidden = 128
head_dims = 32
swin_dims = 32

model = dict(
    type='LLaVAGrounding',
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
        select_layers=(-2, ),  # official: the penultimate layer
        trainable=True),  # random tiny tower: it has to learn (7B: frozen)
    projector=dict(
        type='MLPProjector',
        in_channels=clip_hidden,
        out_channels=llm_hidden,
        num_layers=1),  # official mm_projector: one Linear
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
        special_tokens=('<g_s>', '<g_e>', '<seg>', '<obj>', '<image>'),
        lora=None,  # a randomly initialised LM trains fully
        trainable='all',
        attn_implementation='sdpa'),
    grounding_head=dict(
        type='OpenSeeDGroundingHead',
        prompt_dim=llm_hidden,
        backbone=dict(
            type='mmdet.SwinTransformer',
            embed_dims=swin_dims,
            depths=(1, 1, 1, 1),
            num_heads=(1, 2, 4, 8),
            window_size=4,
            mlp_ratio=4,
            qkv_bias=True,
            drop_path_rate=0.0,
            patch_norm=True,
            out_indices=(0, 1, 2, 3),
            convert_weights=False),
        pixel_decoder=dict(
            type='OpenSeeDPixelDecoder',
            in_channels=tuple(swin_dims * 2**i for i in range(4)),
            strides=(4, 8, 16, 32),
            feat_channels=head_dims,
            out_channels=head_dims,
            num_extra_levels=1,
            encoder=dict(
                num_layers=1,
                layer_cfg=dict(
                    self_attn_cfg=dict(
                        embed_dims=head_dims,
                        num_heads=4,
                        num_levels=4,
                        num_points=4,
                        batch_first=True),
                    ffn_cfg=dict(
                        embed_dims=head_dims,
                        feedforward_channels=2 * head_dims,
                        ffn_drop=0.0,
                        act_cfg=dict(type='ReLU', inplace=True)))),
            positional_encoding=dict(
                num_feats=head_dims // 2, normalize=True)),
        decoder=dict(
            num_layers=2,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=head_dims, num_heads=4, dropout=0.0,
                    batch_first=True),
                cross_attn_cfg=dict(
                    embed_dims=head_dims,
                    num_heads=4,
                    num_levels=4,
                    num_points=4,
                    dropout=0.0,
                    batch_first=True),
                ffn_cfg=dict(
                    embed_dims=head_dims,
                    feedforward_channels=2 * head_dims,
                    ffn_drop=0.0)),
            inverse_sigmoid_eps=1e-5),
        embed_dims=head_dims,
        num_queries=20,
        criterion=dict(num_points=256, match_num_points=256),
        # NOT official: the raw states of a random tiny LM share one
        # direction, which saturates the e * |h| * cos logits; BN1d over the
        # batch's real <seg> states keeps them apart (as GLaMM's tiny
        # recipe does before its [SEG] projection)
        prompt_norm=dict(type='BN1d')),
    train_seg_hidden_source='self',  # official training: the state AT <seg>
    test_seg_hidden_source='self',  # consistent with training (official:
    # 'preceding', the state that predicts <seg>)
    generation_cfg=dict(max_new_tokens=48, do_sample=False))
