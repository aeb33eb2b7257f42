# LLaVA-G's <obj> prompt encoder at tiny size: the Semantic-SAM interactive
# decoder (3 tokens per prompt) on the tiny OpenSeeD parts (the same Swin,
# pixel decoder and DINO decoder configs, design note §2), -> the 128-wide
# LM.
_base_ = ['./openseed_head.py']
tiny_semantic_sam_prompt_encoder = dict(
    type='SemanticSAMPromptEncoder',
    lm_dim=128,
    backbone={{_base_.tiny_openseed_head.backbone}},
    pixel_decoder={{_base_.tiny_openseed_head.pixel_decoder}},
    decoder={{_base_.tiny_openseed_head.decoder}},
    embed_dims=32,
    num_points=256)
