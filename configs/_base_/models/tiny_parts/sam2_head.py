# A SAM2 grounding head at tiny size: a random transformers Sam2Model with a
# Hiera of 1-2-2-1 blocks (dims 16..128, global attention in blocks 2 and 4,
# windows of 4), an FPN of width 64 on strides 4 / 8 / 16 (image embedding
# 8 x 8 at 128 px), prompt / mask-decoder width 64.
tiny_sam2_head = dict(
    type='SAM2GroundingHead',
    sam2=dict(
        config=dict(
            type='Sam2Config',
            vision_config=dict(
                backbone_config=dict(
                    model_type='sam2_hiera_det_model',
                    hidden_size=16,
                    blocks_per_stage=[1, 2, 2, 1],
                    embed_dim_per_stage=[16, 32, 64, 128],
                    num_attention_heads_per_stage=[1, 1, 2, 2],
                    global_attention_blocks=[2, 4],
                    window_size_per_stage=[4, 4, 4, 4],
                    window_positional_embedding_background_size=[4, 4],
                    image_size=[128, 128]),
                backbone_channel_list=[128, 64, 32, 16],
                backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]],
                fpn_hidden_size=64),
            prompt_encoder_config=dict(
                hidden_size=64, image_size=128, patch_size=16),
            mask_decoder_config=dict(
                hidden_size=64,
                num_attention_heads=4,
                mlp_dim=128,
                iou_head_hidden_dim=64))),
    prompt_channels=64,
    image_size=128,
    trainable='all')  # random: its image encoder must learn too
