# The tiny LLaVA-G of `..._600it_synthetic.py` tested on synthetic Flickr30K
# Entities val: phrase grounding Recall@1/5/10 (mmdet's Flickr30k
# definition, box IoU >= 0.5). The GT caption is given with its phrases in
# LLaVA-G markup (`<g_s> phrase <g_e> <seg>`) and read by one forward
# (teacher_forced_tasks), so every GT phrase gets its own <seg> state;
# the head ranks its 10 best queries per <seg>.
_base_ = ['./llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic.py']

model = dict(
    teacher_forced_tasks=('phrase_grounding', ),
    grounding_head=dict(predict_topk=10))

test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='Flickr30kEntitiesDataset',
        data_root='data/synthetic/',
        ann_file='annotations/flickr/final_flickr_separateGT_val.json',
        split='val',
        data_prefix=dict(img_path='images/'),
        test_mode=True,
        pipeline={{_base_.given_answer_pipeline_llava_g_boxes}}))
test_evaluator = [dict(type='GroundingFlickr30kMetric')]
