# GLaMM-GCG: fine-tune GranD-pretrained GLaMM for grounded conversation
# generation (official scripts/finetune_glamm_gcg.sh): RefCOCOg-GCG, PSG-GCG,
# Flickr-GCG and GranDf with the script's sample rates 9:9:9:1, 10 epochs x
# 500 optimizer steps of 160 samples; validation on GranDf val with the
# official GCG metrics (METEOR, CIDEr, AP50, mIoU, recall).
#
# Mix (official_releases.md §3.2): the script that trained the released
# GLaMM-GCG passes `--seg_dataset Semantic_Segm||RefCoco_GCG||PSG_GCG||
# Flickr_GCG||GranDf_GCG --segm_sample_rates 3,9,9,9,1`; docs/training.md
# writes 1,3,3,3,1. The script is what ran, so its rates are used. The
# Semantic_Segm source (ADE20K, COCO-Stuff, PASCAL-Part, PACO-LVIS, Mapillary
# as "What is {class} in this image?" -> "It is [SEG]." with 3 classes per
# sample) is left out: this project has no loader for it yet (mmseg reads the
# label maps, but the per-sample class draw and mask building are a dataset of
# their own, see docs/datasets.md "Not covered by a loader"). Its share in the
# script is 3 / 31 of the samples; the four GCG sources keep their relative
# rates 9:9:9:1.
_base_ = [
    '../_base_/models/glamm_vicuna7b_clipl336_sam-h.py',
    '../_base_/datasets/glamm_pipelines.py',
    '../_base_/schedules/glamm_adamw.py',
    '../_base_/default_runtime.py',
]
# start from the GranD-pretrained model (a checkpoint of this project, or the
# official one converted with tools/model_converters/glamm_to_mmgrounding.py)
load_from = 'checkpoints/glamm_grand_pretrained_mmgrounding.pth'

grandf_root = 'data/GranDf/'
optimizer_steps = 10 * 500
max_iters = optimizer_steps * 10  # x accumulative_counts
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=100 * 10),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=100 * 10, end=max_iters)
]

gcg_train = dict(
    type='GCGDataset',
    split='train',
    data_root=grandf_root,
    pipeline={{_base_.glamm_train_pipeline}})
gcg_sources = [
    dict(
        **gcg_train,
        format='refcocog',
        ann_file='annotations/train/RefCOCOg_GCG_train.json',
        data_prefix=dict(img_path='../coco_2014/train2014/')),
    dict(
        **gcg_train,
        format='psg',
        ann_file='annotations/train/OpenPsgGCG_train.json',
        data_prefix=dict(img_path='../coco_2017/')),
    dict(
        **gcg_train,
        format='flickr',
        ann_file='annotations/train/flickr_mergedGT_GCG_train.json',
        data_prefix=dict(img_path='../flikcr_30k/train/')),
    dict(
        **gcg_train,
        format='grandf',
        ann_file='annotations/train/GranDf_HA_GCG_train.json',
        data_prefix=dict(img_path='GranDf_HA_images/train/')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    # GLaMM's HybridDataset: each sample's source drawn with p ~ 9:9:9:1
    # (RefCOCOg, PSG, Flickr, GranDf; finetune_glamm_gcg.sh without
    # Semantic_Segm, see above)
    sampler=dict(type='RandomSourceSampler', source_ratio=[9, 9, 9, 1]),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ConcatDataset', datasets=gcg_sources))

# GranDf val/test ground truth in the official evaluator's file pair
gcg_eval = dict(
    type='GCGDataset',
    format='eval',
    data_root=grandf_root,
    data_prefix=dict(img_path='GranDf_HA_images/val_test/'),
    test_mode=True,
    pipeline={{_base_.glamm_test_pipeline}})
eval_loader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'))
val_dataloader = dict(
    **eval_loader,
    dataset=dict(
        **gcg_eval,
        split='val',
        ann_file='annotations/val_test/val_gcg_coco_caption_gt.json'))
test_dataloader = dict(
    **eval_loader,
    dataset=dict(
        **gcg_eval,
        split='test',
        ann_file='annotations/val_test/test_gcg_coco_caption_gt.json'))
# recall uses a text encoder: the official one is bert-base-uncased
# (mean-pooled), from a local directory; the default is the offline MiniLM
val_evaluator = dict(
    type='GCGMetric',
    text_encoder=dict(type='HFTextEncoder'))
test_evaluator = val_evaluator
log_processor = dict(by_epoch=False)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000))
