# Swap: a SAM2 head (transformers Sam2Model, tiny Hiera) on GLaMM, in place
# of SAM: the [SEG] projector now maps the LM width (128) to SAM2's 64.
# Everything else is the tiny GLaMM recipe (data, schedule, GCG test).
_base_ = [
    '../glamm/glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py',
    '../_base_/models/tiny_parts/sam2_head.py'
]

model = dict(
    seg_projector=dict(out_channels={{_base_.tiny_sam2_head.prompt_channels}}),
    grounding_head=dict(
        _delete_=True,
        type='SAM2GroundingHead',
        sam2={{_base_.tiny_sam2_head.sam2}},
        prompt_channels={{_base_.tiny_sam2_head.prompt_channels}},
        image_size={{_base_.image_size}},
        trainable='all'))
