# GLaMM-RegCap on RefCOCOg (MDETR region captions; finetune_glamm_reg_refcocog.sh): region-level captioning from a <bbox> prompt,
# 5 epochs x 500 optimizer steps from GranD-pretrained GLaMM; scored with
# METEOR and CIDEr (pycocoevalcap, as the official evaluate.py).
_base_ = [
    '../_base_/models/glamm_vicuna7b_clipl336_sam-h.py',
    '../_base_/datasets/glamm_pipelines.py',
    '../_base_/schedules/glamm_adamw.py',
    '../_base_/default_runtime.py',
]
load_from = 'checkpoints/glamm_grand_pretrained_mmgrounding.pth'
data_root = 'data/RefCoco_Reg/'

max_iters = 5 * 500 * 10  # epochs x steps x accumulative_counts
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500 * 10)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=100 * 10),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=100 * 10, end=max_iters)
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='RegionCaptionDataset',
        format='refcocog',
        split='train',
        data_root=data_root,
        ann_file='mdetr_annotations/finetune_refcocog_train.json',
        data_prefix=dict(img_path='../coco_2014/train2014/'),
        pipeline={{_base_.glamm_train_pipeline}}))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='RegionCaptionDataset',
        format='refcocog',
        split='val',
        one_per_region=True,
        data_root=data_root,
        ann_file='mdetr_annotations/finetune_refcocog_val_captions.json',
        data_prefix=dict(img_path='../coco_2014/train2014/'),
        test_mode=True,
        pipeline={{_base_.glamm_test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(type='RegionCaptionMetric')
test_evaluator = val_evaluator
log_processor = dict(by_epoch=False)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500 * 10))
