# The tiny LLaVA-G of `..._600it_synthetic.py` tested on synthetic GVC val:
# Grounding-Bench grounded recall / precision / F1 (box IoU > 0.5 and the
# phrase judged to name the GT object; offline embedding judge).
_base_ = ['./llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic.py']

test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='GVCDataset',
        data_root='data/synthetic/',
        ann_file='annotations/llava_g/grounded_visual_chat_data_val.json',
        instances_file='annotations/instances.json',
        data_prefix=dict(img_path='images/'),
        test_mode=True,
        pipeline={{_base_.test_pipeline_llava_g}}))
test_evaluator = [
    dict(type='GroundingBenchMetric', judge=dict(type='EmbeddingJudge'))
]
