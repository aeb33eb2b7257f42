# Swap: GLaMM's multi-level RoIAlign region encoder serves LLaVA-G's <obj>
# box prompts (in place of the Semantic-SAM prompt encoder): it pools two
# CLIP levels (layers -3 and -2; -2 still fills the image tokens) inside each
# region's box, mapped to the CLIP view by the data preprocessor
# (`region_bboxes_clip`). The tiny LLaVA-G recipe's data gain the synthetic
# GVC-R chats and RefCOCOg region captions (both with <obj> prompts); the
# test is region captioning from an <obj> box (CIDEr / METEOR).
_base_ = [
    '../llava_grounding/'
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic.py',
    '../_base_/models/tiny_parts/region_encoder.py'
]

model = dict(
    vision_encoder=dict(select_layers=(-3, -2)),
    prompt_encoder={{_base_.tiny_region_encoder}},
    prompt_view='clip_feats',
    prompts_field='region_bboxes_clip')

train_dataloader = dict(
    sampler=dict(source_ratio=[2, 2, 1, 1, 1]),
    dataset=dict(datasets=[
        {{_base_.refcoco_rec_llava_g}},
        {{_base_.gvc_llava_g}},
        {{_base_.flickr30k_entities_llava_g}},
        {{_base_.gvc_r_llava_g}},
        {{_base_.region_caption_refcocog_llava_g}},
    ]))
regcap_val = dict(
    type='RegionCaptionDataset',
    data_root={{_base_.data_root}},
    format='refcocog',
    split='val',
    one_per_region=True,
    region_token='<obj>',
    ann_file='annotations/region_caption/finetune_refcocog_val_captions.json',
    data_prefix=dict(img_path='images/'),
    test_mode=True,
    pipeline={{_base_.test_pipeline_llava_g}})
val_dataloader = dict(dataset=dict(_delete_=True, **regcap_val))
test_dataloader = val_dataloader
val_evaluator = [dict(type='RegionCaptionMetric')]
test_evaluator = val_evaluator
