# The tiny LLaVA-G of `..._600it_synthetic.py` tested on synthetic GVC val:
# Grounding-Bench grounded recall / precision / F1 (box IoU > 0.5 and the
# phrase judged to name the GT object; offline embedding judge).
_base_ = ['./llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic.py']

test_dataloader = dict(dataset={{_base_.gvc_val}})
test_evaluator = dict(
    type='GroundingBenchMetric', judge=dict(type='EmbeddingJudge'))
