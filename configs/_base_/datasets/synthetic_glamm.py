# The synthetic world (tools/dataset_converters/make_synthetic.py) as GLaMM
# training data: referring segmentation (3 expressions per image, one
# conversation) + grounded conversation generation (GranDf GCG format);
# tested on GCG val with the official GCG metrics.
data_root = 'data/synthetic/'
_tokenizer_dir = data_root + 'tokenizer'
num_image_tokens = 64  # (128 / 16) ** 2 CLIP patches

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(type='FormatGroundedConversation', style='glamm'),
    dict(
        type='TokenizeConversation',
        tokenizer=dict(pretrained_model_name_or_path=_tokenizer_dir),
        num_image_tokens=num_image_tokens,
        max_length=384),
    dict(type='PackGroundingInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(type='FormatGroundedConversation', style='glamm', with_answer=False),
    dict(
        type='TokenizeConversation',
        tokenizer=dict(pretrained_model_name_or_path=_tokenizer_dir),
        num_image_tokens=num_image_tokens,
        max_length=384),
    dict(type='PackGroundingInputs')
]

refseg_train = dict(
    type='RefCOCOGroundingDataset',
    data_root=data_root,
    ann_file='annotations/instances.json',
    split_file='annotations/refs(unc).p',
    split='train',
    task='refseg',
    max_refs_per_image=3,
    data_prefix=dict(img_path='images/'),
    pipeline=train_pipeline)
gcg_train = dict(
    type='GCGDataset',
    data_root=data_root,
    format='grandf',
    split='train',
    ann_file='annotations/gcg/GranDf_HA_GCG_train.json',
    data_prefix=dict(img_path='images/'),
    pipeline=train_pipeline)

train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ConcatDataset', datasets=[refseg_train, gcg_train]))

gcg_val = dict(
    type='GCGDataset',
    data_root=data_root,
    format='eval',
    split='val',
    ann_file='annotations/gcg/val_gcg_coco_caption_gt.json',
    data_prefix=dict(img_path='images/'),
    test_mode=True,
    pipeline=test_pipeline)
refseg_val = dict(
    type='RefCOCOGroundingDataset',
    data_root=data_root,
    ann_file='annotations/instances.json',
    split_file='annotations/refs(unc).p',
    split='val',
    task='refseg',
    one_per_expression=True,
    data_prefix=dict(img_path='images/'),
    test_mode=True,
    pipeline=test_pipeline)

val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=gcg_val)
test_dataloader = val_dataloader

val_evaluator = dict(type='GCGMetric')
test_evaluator = val_evaluator
