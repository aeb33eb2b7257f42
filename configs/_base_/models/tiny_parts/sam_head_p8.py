# The tiny SAM with 8-px patches (16 x 16 tokens on 128 px, masks decoded
# at 64 x 64): a model override merged into a tiny GLaMM config, shared by
# the p8 training config and its refseg test view.
tiny_sam_p8_model = dict(
    grounding_head=dict(
        sam=dict(
            config=dict(
                vision_config=dict(patch_size=8),
                prompt_encoder_config=dict(patch_size=8)))))
