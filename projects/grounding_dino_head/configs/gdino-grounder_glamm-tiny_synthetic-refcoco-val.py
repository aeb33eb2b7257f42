# REC on synthetic RefCOCO val, LMM mode: the tiny GLaMM (the `make demo`
# model, configs/glamm/...1000it_synthetic.py) answers "Please locate the
# {expr} in this image."; the phrase of each grounding token of its answer
# (shared markup parser; a bare [SEG] stands for the expression) becomes one
# entity of the tiny GroundingDINO's prompt (text + tokens_positive,
# custom_entities: no NER), whose top box per phrase is the answer's box.
# Scored with RECAccMetric (an answer without a grounding token is a miss).
_base_ = ['./gdino-grounder_direct_synthetic-refcoco-val.py']

lmm_config = '{{ fileDirname }}/../../../configs/glamm/' \
    'glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py'
lmm_checkpoint = 'work_dirs/glamm_tiny/iter_1000.pth'

model = dict(
    mode='lmm',
    lmm=dict(_delete_=True, config=lmm_config, checkpoint=lmm_checkpoint),
    question='Please locate the {expr} in this image.',
    max_new_tokens=24,
    lmm_batch_size=16)
# an answer may hold no grounding token (no box): RefExpMetric needs one
test_evaluator = [dict(type='RECAccMetric')]
val_evaluator = test_evaluator
