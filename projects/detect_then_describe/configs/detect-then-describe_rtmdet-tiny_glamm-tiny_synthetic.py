# Dense region captioning on synthetic val with one config: the tiny RTMDet
# (rtmdet_tiny-w025_synthetic.py) proposes boxes, the tiny GLaMM
# (glamm_llama-tiny_regcap_synthetic.py) captions each through `<bbox>`.
# Scored against every GT region's referring sentences (MDETR RefCOCOg val
# of the synthetic world): captions of detections matched at IoU >= 0.5
# (METEOR, CIDEr-D via RegionCaptionMetric) and box recall / precision.
#
#   python projects/detect_then_describe/tools/compose_checkpoint.py \
#       <this config> work_dirs/dtd/dtd.pth
#   python tools/test.py <this config> work_dirs/dtd/dtd.pth
_base_ = ['../../../configs/_base_/default_runtime.py']
custom_imports = dict(
    imports=['projects.detect_then_describe.detect_then_describe'],
    allow_failed_imports=False)

data_root = 'data/synthetic/'
_configs = '{{ fileDirname }}/'  # this folder, whatever the working dir
detector_config = _configs + 'rtmdet_tiny-w025_synthetic.py'
detector_checkpoint = 'work_dirs/dtd_rtmdet/epoch_2.pth'
lmm_config = _configs + 'glamm_llama-tiny_regcap_synthetic.py'
lmm_checkpoint = 'work_dirs/dtd_glamm_regcap/iter_150.pth'

model = dict(
    type='DetectThenDescribe',
    detector=dict(config=detector_config, checkpoint=detector_checkpoint),
    lmm=dict(config=lmm_config, checkpoint=lmm_checkpoint),
    score_thr=0.3,
    topk=10,
    lmm_batch_size=16,
    max_new_tokens=16)  # synthetic captions are <= 9 words

test_pipeline = [
    dict(type='mmdet.LoadImageFromFile'),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(
        type='mmdet.PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'gt_region_captions', 'sample_idx'))
]
test_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='DenseRegionCaptionDataset',
        data_root=data_root,
        ann_file='annotations/region_caption/finetune_refcocog_val.json',
        data_prefix=dict(img_path='images/'),
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = dict(type='DenseRegionCaptionMetric', iou_thr=0.5)
test_cfg = dict(type='TestLoop')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
val_cfg = dict(type='ValLoop')
