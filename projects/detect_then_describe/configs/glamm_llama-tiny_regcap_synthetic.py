# Tiny GLaMM (configs/glamm, the `make demo` model) trained on the synthetic
# world's region captions (`<bbox>` -> caption: MDETR RefCOCOg + VG style),
# the GLaMM task DetectThenDescribe asks it for. Same model, optimiser and
# losses as the demo recipe; only the data and the schedule differ.
# Test: GT boxes -> captions on synthetic VG test (the upper bound a detector
# in front of it can reach).
_base_ = [
    '../../../configs/_base_/models/glamm_tiny.py',
    '../../../configs/_base_/datasets/synthetic_sources.py',
    '../../../configs/_base_/default_runtime.py',
]

max_iters = 150
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_begin=max_iters + 1, val_interval=max_iters + 1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# as the demo recipe (configs/glamm/glamm_llama-tiny_..._1000it_synthetic.py)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=20),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=20, end=max_iters)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=max_iters,
                    by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)

# Short chats (2 regions per training sample) keep a CPU step cheap; the
# evaluation asks about one region per prompt anyway.
_refcocog_train = dict(
    type='RegionCaptionDataset',
    data_root={{_base_.data_root}},
    format='refcocog',
    split='train',
    ann_file='annotations/region_caption/finetune_refcocog_train.json',
    data_prefix=dict(img_path='images/'),
    max_regions_per_image=2,
    pipeline={{_base_.train_pipeline_glamm}})
_vg_train = dict(
    _refcocog_train,
    format='vg',
    ann_file='annotations/region_caption/vg_train.json')
_train_sources = [_refcocog_train, _vg_train]
train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='ConcatDataset',
        datasets=_train_sources))

region_caption_vg_test = dict(
    type='RegionCaptionDataset',
    data_root={{_base_.data_root}},
    format='vg',
    split='test',
    one_per_region=True,
    ann_file='annotations/region_caption/vg_test_caption.json',
    data_prefix=dict(img_path='images/'),
    test_mode=True,
    pipeline={{_base_.test_pipeline_glamm}})
val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=region_caption_vg_test)
test_dataloader = val_dataloader
val_evaluator = dict(type='RegionCaptionMetric')
test_evaluator = val_evaluator
