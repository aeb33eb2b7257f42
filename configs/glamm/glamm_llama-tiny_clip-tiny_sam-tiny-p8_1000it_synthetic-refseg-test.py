# Referring segmentation view of `..._sam-tiny-p8_1000it_synthetic.py`: the
# 16-px model's view (`..._sam-tiny_1000it_synthetic-refseg-test.py`: every
# synthetic val expression, "Sure, it is [SEG]." teacher-forced, official
# gIoU / cIoU) with the 8-px tiny SAM.
_base_ = [
    './glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic-refseg-test.py',
    '../_base_/models/tiny_parts/sam_head_p8.py'
]

model = {{_base_.tiny_sam_p8_model}}
