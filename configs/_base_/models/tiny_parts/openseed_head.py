# LLaVA-G's grounding head at tiny size: OpenSeeD with Swin 1-1-1-1 (dims
# 32..256), d = 32, 20 queries (llava_g_design.md §8), reading the raw
# 128-wide <seg> states. Its backbone / pixel_decoder / decoder also build
# the tiny Semantic-SAM prompt encoder of the swaps (the same parts).
tiny_openseed_head = dict(
    type='OpenSeeDGroundingHead',
    prompt_dim=128,
    backbone=dict(
        type='mmdet.SwinTransformer',
        embed_dims=32,
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
        in_channels=(32, 64, 128, 256),
        strides=(4, 8, 16, 32),
        feat_channels=32,
        out_channels=32,
        num_extra_levels=1,
        encoder=dict(
            num_layers=1,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=32,
                    num_heads=4,
                    num_levels=4,
                    num_points=4,
                    batch_first=True),
                ffn_cfg=dict(
                    embed_dims=32,
                    feedforward_channels=64,
                    ffn_drop=0.0,
                    act_cfg=dict(type='ReLU', inplace=True)))),
        positional_encoding=dict(num_feats=16, normalize=True)),
    decoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=32, num_heads=4, dropout=0.0, batch_first=True),
            cross_attn_cfg=dict(
                embed_dims=32,
                num_heads=4,
                num_levels=4,
                num_points=4,
                dropout=0.0,
                batch_first=True),
            ffn_cfg=dict(
                embed_dims=32, feedforward_channels=64, ffn_drop=0.0)),
        inverse_sigmoid_eps=1e-5),
    embed_dims=32,
    num_queries=20,
    criterion=dict(num_points=256, match_num_points=256),
    # NOT official: the raw states of a random tiny LM share one
    # direction, which saturates the e * |h| * cos logits; BN1d over the
    # batch's real <seg> states keeps them apart (as GLaMM's tiny
    # recipe does before its [SEG] projection)
    prompt_norm=dict(type='BN1d'))
