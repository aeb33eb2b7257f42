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

max_iters = 300
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
         end=30),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=30, end=max_iters)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='CheckpointHook', interval=max_iters,
                    by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)

train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            {{_base_.region_caption_refcocog_glamm}},
            {{_base_.region_caption_vg_glamm}},
        ]))

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
