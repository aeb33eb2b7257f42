# The synthetic world as LLaVA-Grounding data (`<g_s> phrase <g_e> <seg>`,
# "(with grounding)" requests). Train: RefCOCO referring expressions (REC
# style: every expression of up to 3 refs per image in one conversation),
# grounded visual chat (GVC) and Flickr30K-Entities-style phrase grounding
# (the official stage-2 sources, per-sample mixing 2:2:1). Test: every val
# expression, scored for REC (Acc@0.5) and RES (gIoU/cIoU) at once.
_base_ = ['./synthetic_sources.py']

data_root = 'data/synthetic/'
_img_prefix = dict(img_path='images/')
_tokenizer = dict(pretrained_model_name_or_path=data_root + 'tokenizer')
num_image_tokens = 64  # (128 / 16) ** 2 CLIP patches
max_length = 512

test_pipeline_llava_g = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(
        type='FormatGroundedConversation',
        style='llava_g',
        task_templates='default',
        with_answer=False),
    dict(
        type='TokenizeConversation',
        tokenizer=_tokenizer,
        num_image_tokens=num_image_tokens,
        max_length=max_length,
        grounding_token='<seg>',
        region_token='<obj>'),
    dict(type='PackGroundingInputs')
]
# The expression / caption GIVEN in the answer, read by one teacher-forced
# forward (`teacher_forced_tasks`): the test views that score the <seg>
# states alone. Flickr30K Entities has boxes only (the filled box is the
# target mask).
given_answer_pipeline_llava_g = [
    test_pipeline_llava_g[0], test_pipeline_llava_g[1],
    dict(test_pipeline_llava_g[2], with_answer=True),
    *test_pipeline_llava_g[3:]
]
given_answer_pipeline_llava_g_boxes = [
    test_pipeline_llava_g[0],
    dict(type='LoadGroundingAnnotations', mask_from_box=True),
    *given_answer_pipeline_llava_g[2:]
]

train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='RandomSourceSampler', source_ratio=[2, 2, 1]),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            {{_base_.refcoco_rec_llava_g}},
            {{_base_.gvc_llava_g}},
            {{_base_.flickr30k_entities_llava_g}},
        ]))

refcoco_rec_val = dict(
    type='RefCOCOGroundingDataset',
    data_root=data_root,
    ann_file='annotations/instances.json',
    split_file='annotations/refs(unc).p',
    split='val',
    task='rec',
    one_per_expression=True,
    data_prefix=_img_prefix,
    test_mode=True,
    pipeline=test_pipeline_llava_g)

val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=refcoco_rec_val)
test_dataloader = val_dataloader
val_evaluator = [dict(type='RECAccMetric'), dict(type='RefSegGIoUMetric')]
test_evaluator = val_evaluator
