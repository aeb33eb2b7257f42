# The warm-started SAM-head swap scored like the tiny LLaVA-G: REC
# (Acc@0.5 on boxes from the masks) and RES (gIoU/cIoU) on every synthetic
# val expression, the expression given in the answer (one teacher-forced
# forward).
_base_ = ['./llava-g_llama-tiny_clip-tiny_sam-tiny-from-glamm_200it_synthetic.py']

model = dict(teacher_forced_tasks=('rec', ))

test_dataloader = dict(
    dataset=dict(pipeline={{_base_.given_answer_pipeline_llava_g}}))
val_dataloader = test_dataloader
