# LLaVA-G stage 1 (official scripts/pretrain_joint.sh): the projector, the new
# token rows and the whole OpenSeeD model train, the LLM is frozen; lr 1e-4,
# 30,000 steps of 32 samples (8 per GPU x 4 GPUs); Flickr30K Entities and
# COCO referring data with the script's per-step totals 8 : 24, of which 4
# go here to LLaVA's CC-595K captions (cap600k_brackets_all.json; the script
# gives the caption share no total of its own: our choice), read as plain
# LLaVA-format chat (its "brackets" markup is undocumented). COCO referring
# data: the official `grounding_train2017.json` (ref-panoptic) is read here
# as RefCOCO refs + instances (REC style, every expression of 3 refs).
_base_ = [
    '../_base_/models/llava_g_vicuna7b_clipl224_openseed-swint.py',
    '../_base_/datasets/llava_g_pipelines.py',
    '../_base_/schedules/llava_g_adamw.py',
    '../_base_/default_runtime.py',
]
model = dict(
    projector=dict(trainable=True),
    # official: embed/lm_head train but every old row is reset each step, so
    # only the 3 new rows move; here the full rows train (as GLaMM does)
    language_model=dict(trainable=('embed_tokens', 'lm_head')))

max_iters = 30000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters + 1)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=900),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=900, end=max_iters,
         T_max=max_iters - 900, eta_min=0.)
]

flickr_train = dict(
    type='Flickr30kEntitiesDataset',
    data_root='data/flickr30k_entities/',
    ann_file='annotations/final_flickr_separateGT_train.json',
    split='train',
    data_prefix=dict(img_path='train/'),
    pipeline={{_base_.llava_g_train_pipeline_boxes}})
refcoco_train = dict(
    type='RefCOCOGroundingDataset',
    data_root='data/coco/',
    ann_file='refcoco/instances.json',
    split_file='refcoco/refs(unc).p',
    split='train',
    task='rec',
    max_refs_per_image=3,
    data_prefix=dict(img_path='train2014/'),
    pipeline={{_base_.llava_g_train_pipeline}})
caption_train = dict(
    type='LLaVAInstructDataset',
    data_root='data/llava/',
    ann_file='cap600k_brackets_all.json',
    data_prefix=dict(img_path='cc3m_595k/'),
    pipeline={{_base_.llava_g_train_pipeline}})
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='RandomSourceSampler', source_ratio=[8, 20, 4]),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='ConcatDataset',
        datasets=[flickr_train, refcoco_train, caption_train]))

# REC + RES on RefCOCO val (LLaVA-G Tab. 4)
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        refcoco_train,
        split='val',
        one_per_expression=True,
        test_mode=True,
        pipeline={{_base_.llava_g_test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = [dict(type='RECAccMetric'), dict(type='RefSegGIoUMetric')]
test_evaluator = val_evaluator
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000))
auto_scale_lr = dict(enable=False, base_batch_size=32)
log_processor = dict(by_epoch=False)
