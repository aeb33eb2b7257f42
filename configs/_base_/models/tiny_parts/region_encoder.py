# GLaMM's multi-level RoIAlign region encoder at tiny size: two CLIP levels
# of width 128 on a 128 px view -> the 128-wide LM.
tiny_region_encoder = dict(
    type='GLaMMRegionEncoder',
    in_channels=128,
    out_channels=128,
    num_levels=2,
    image_size=128,
    roi_size=4,
    query_channels=128,
    pos_hidden_channels=32,
    num_fuse=2,
    norm_cfg=dict(type='GN', num_groups=8))
