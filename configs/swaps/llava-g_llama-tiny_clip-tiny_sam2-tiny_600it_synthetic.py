# Swap: a SAM2 head (transformers Sam2Model, tiny Hiera) on LLaVA-Grounding:
# the raw <seg> state goes through a seg projector (LM width 128 -> SAM2's
# 64) and prompts the SAM2 mask decoder (one union mask per <seg>, boxes
# from masks). Everything else is the tiny LLaVA-G recipe.
_base_ = [
    '../llava_grounding/'
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic.py',
    '../_base_/models/tiny_parts/sam2_head.py'
]

model = dict(
    seg_projector=dict(  # tiny_seg_projector with SAM2's width out
        type='MLPProjector',
        in_channels={{_base_.llm_hidden}},
        out_channels={{_base_.tiny_sam2_head.prompt_channels}},
        hidden_channels={{_base_.llm_hidden}},
        act='ReLU',
        norm='BN1d'),
    grounding_head=dict(
        _delete_=True,
        type='SAM2GroundingHead',
        sam2={{_base_.tiny_sam2_head.sam2}},
        prompt_channels={{_base_.tiny_sam2_head.prompt_channels}},
        image_size={{_base_.image_size}},
        trainable='all'))
