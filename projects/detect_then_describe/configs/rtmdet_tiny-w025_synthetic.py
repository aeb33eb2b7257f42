# A tiny RTMDet (mmdet's own RTMDet-tiny config, narrower: widen 0.25) trained
# from scratch on the synthetic world's COCO instances (3 categories: circle,
# square, triangle; 128 px images) on CPU: 2 epochs took 14 min wall on 2
# heavily shared cores (bbox mAP 30.4 on val, see the README). No pretrained
# weights: nothing can be downloaded, so the backbone's ImageNet init_cfg is
# dropped. Make the per-split files first:
#   python projects/detect_then_describe/tools/split_instances.py \
#       data/synthetic
# then `python tools/train.py <this config>` (or mmdet's tools/train.py).
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'

data_root = 'data/synthetic/'
metainfo = dict(
    classes=('circle', 'square', 'triangle'),
    palette=[(220, 20, 60), (0, 128, 0), (0, 0, 142)])
image_size = 128
max_epochs = 2
base_lr = 0.004

model = dict(
    # mmdet's RTMDet recipe pads to a fixed 640; jittered 128 px images need
    # sizes divisible by the largest stride for the PAFPN's upsample + concat
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(deepen_factor=0.167, widen_factor=0.25, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256], out_channels=64, num_csp_blocks=1),
    bbox_head=dict(num_classes=3, in_channels=64, feat_channels=64),
    test_cfg=dict(nms_pre=1000, score_thr=0.001, max_per_img=100))

# The world is 128 px and objects are 17-31 px: scale jitter around the
# native size plus flips (mosaic/mixup of 640 px crops would only add cost).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomResize',
        scale=(image_size, image_size),
        ratio_range=(0.8, 1.25),
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=data_root + 'annotations/instances_val.json',
    proposal_nums=(100, 1, 10))
test_evaluator = val_evaluator

train_cfg = dict(
    max_epochs=max_epochs, val_interval=max_epochs, dynamic_intervals=None)
optim_wrapper = dict(optimizer=dict(lr=base_lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=50),
    dict(
        type='CosineAnnealingLR',
        eta_min=base_lr * 0.05,
        begin=1,
        end=max_epochs,
        T_max=max_epochs - 1,
        by_epoch=True,
        convert_to_iter_based=True),
]
# No EMA / pipeline switch (they belong to the 300-epoch recipe).
# mmgrounding's WeightsOnlyCheckpointHook keeps the checkpoint loadable with
# torch>=2.6's weights_only torch.load (DetectThenDescribe loads it with
# mmdet's init_detector); custom_imports also serves mmdet's tools/train.py.
custom_imports = dict(imports=['mmgrounding'], allow_failed_imports=False)
custom_hooks = [dict(type='mmgrounding.WeightsOnlyCheckpointHook')]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=16)
randomness = dict(seed=0)
