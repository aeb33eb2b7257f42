# GLaMM's [SEG] projection (text_hidden_fcs) at tiny size: LM width 128 ->
# 128 (the tiny SAM prompt width).
tiny_seg_projector = dict(
    type='MLPProjector',
    in_channels=128,
    out_channels=128,
    hidden_channels=128,
    act='ReLU',
    norm='BN1d')  # keeps [SEG] prompts of different phrases apart
