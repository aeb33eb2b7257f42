# The tiny LLaVA-G of `..._600it_synthetic.py` scored for REC (Acc@0.5) and
# RES (gIoU/cIoU) on every synthetic val expression with the expression
# GIVEN in the answer ("Sure, <g_s> {expression} <g_e> <seg>."), read by one
# teacher-forced forward (`teacher_forced_tasks`), as GLaMM's official RES
# evaluation reads "Sure, it is [SEG].". This scores the grounding of the
# <seg> state alone; the base config scores the model's own generated
# answers (where a tiny LM may also fail to repeat the expression).
_base_ = ['./llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic.py']

model = dict(teacher_forced_tasks=('rec', ))

test_dataloader = dict(
    dataset=dict(pipeline={{_base_.given_answer_pipeline_llava_g}}))
val_dataloader = test_dataloader
