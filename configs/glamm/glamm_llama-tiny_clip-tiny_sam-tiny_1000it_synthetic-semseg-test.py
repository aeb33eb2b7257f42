# Test-only view of the tiny synthetic GLaMM: open-vocabulary semantic
# segmentation of synthetic val through mmsegmentation. The mmseg dataset
# (SyntheticSemSegDataset: label PNGs of the world's semseg/ split, classes
# background + shapes) feeds SemanticSegGroundingDataset: per image, one
# "Please segment the <class> in this image." query per class present
# (teacher-forced "Sure, it is [SEG]." as GLaMM's RES evaluation); the
# masks are merged into label maps and scored by mmseg's IoUMetric
# (OpenVocabSemSegMetric). Use with the checkpoint of the 1000it config.
_base_ = ['./glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py']

data_root = 'data/synthetic/'
_tokenizer_dir = data_root + 'tokenizer'
semseg_val = dict(
    type='SyntheticSemSegDataset',
    data_root=data_root,
    ann_file='semseg/val.txt',
    data_prefix=dict(img_path='images/', seg_map_path='semseg/labels/'))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(type='FormatGroundedConversation', style='glamm', with_answer=False),
    dict(
        type='TokenizeConversation',
        tokenizer=dict(pretrained_model_name_or_path=_tokenizer_dir),
        num_image_tokens={{_base_.num_image_tokens}},
        max_length=384),
    dict(
        type='PackGroundingInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'task',
                   'source', 'gt_phrases', 'prompt', 'sample_idx',
                   'semseg_label', 'gt_seg_map_path', 'label_map',
                   'reduce_zero_label'))
]

model = dict(refseg_teacher_forcing=True)
test_dataloader = dict(
    _delete_=True,
    batch_size=16,
    num_workers=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='SemanticSegGroundingDataset',
        seg_dataset=semseg_val,
        test_mode=True,
        question_templates=['Please segment the {expr} in this image.'],
        pipeline=test_pipeline))
test_evaluator = dict(_delete_=True, type='OpenVocabSemSegMetric',
                      iou_metrics=['mIoU'])
val_dataloader = test_dataloader
val_evaluator = test_evaluator
