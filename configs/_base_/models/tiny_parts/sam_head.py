# GLaMM's grounding head at tiny size: a random SAM (transformers SamModel;
# 2-layer ViT of width 64 on a 128 px view, prompt / mask-decoder width 128).
tiny_sam_head = dict(
    type='SAMGroundingHead',
    sam=dict(
        config=dict(
            type='SamConfig',
            vision_config=dict(
                hidden_size=64,
                output_channels=128,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=128,
                patch_size=16,
                mlp_dim=128,
                global_attn_indexes=[0, 1],
                window_size=0,
                num_pos_feats=64,
                initializer_range=0.02),
            prompt_encoder_config=dict(
                hidden_size=128,
                image_size=128,
                patch_size=16,
                mask_input_channels=16),
            mask_decoder_config=dict(
                hidden_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                mlp_dim=256,
                iou_head_hidden_dim=128))),
    prompt_channels=128,
    image_size=128,
    # the tiny SAM is random: its image encoder must learn too
    trainable='all')
