# Swap: GLaMM's SAM head on LLaVA-Grounding. The raw <seg> state (LM width)
# goes through a seg projector (GLaMM's MLP; at 7B 4096 -> 256, here 128 ->
# 128) and prompts the tiny SAM mask decoder: one union mask per <seg>,
# boxes from the masks (REC is scored on them). Everything else is the tiny
# LLaVA-G recipe (data, schedule, REC + RES test).
_base_ = [
    '../llava_grounding/'
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic.py',
    '../_base_/models/tiny_parts/sam_head.py',
    '../_base_/models/tiny_parts/seg_projector.py'
]

model = dict(
    seg_projector={{_base_.tiny_seg_projector}},
    grounding_head=dict(
        _delete_=True,
        type='SAMGroundingHead',
        sam={{_base_.tiny_sam_head.sam}},
        prompt_channels={{_base_.tiny_sam_head.prompt_channels}},
        image_size={{_base_.image_size}},
        trainable='all'))
