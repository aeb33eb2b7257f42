# REC on synthetic RefCOCO val with the tiny GroundingDINO as the grounder,
# direct mode: each expression goes straight to the detector in its REC mode
# (tokens_positive=-1), no LMM. Scored with RECAccMetric (Acc@0.5) and, on
# the same predictions, mmdet's RefExpMetric (precision@1 must equal it).
# Inputs: see grounding-dino_r18-tiny_synthetic-refcoco.py (tiny BERT,
# converted annotations, the trained detector), then
#   python projects/detect_then_describe/tools/compose_checkpoint.py \
#       <this config> work_dirs/gdino_direct/grounder.pth
#   python tools/test.py <this config> work_dirs/gdino_direct/grounder.pth
_base_ = ['../../../configs/_base_/default_runtime.py']
custom_imports = dict(
    imports=['projects.grounding_dino_head.grounding_dino_head'],
    allow_failed_imports=False)

ann_dir = 'work_dirs/grounding_dino_head/data/'
image_dir = 'data/synthetic/images/'
detector_config = '{{ fileDirname }}/' \
    'grounding-dino_r18-tiny_synthetic-refcoco.py'
detector_checkpoint = 'work_dirs/grounding_dino_head/gdino/iter_400.pth'

model = dict(
    type='GroundingDINOPhraseGrounder',
    mode='direct',
    detector=dict(config=detector_config, checkpoint=detector_checkpoint),
    lmm=None,
    rec_topk=10)  # ranked: precision@1/5/10; Acc@1 reads the top box

test_pipeline = [
    dict(type='mmdet.LoadImageFromFile'),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='mmdet.PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'text'))
]
test_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='mmdet.MDETRStyleRefCocoDataset',
        data_root='',
        ann_file=ann_dir + 'final_refcoco_val.json',
        data_prefix=dict(img=image_dir),
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = [
    dict(type='RECAccMetric', topk=(1, 5, 10)),
    dict(type='mmdet.RefExpMetric',
         ann_file=ann_dir + 'final_refcoco_val.json',
         topk=(1, 5, 10)),
]
test_cfg = dict(type='TestLoop')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
val_cfg = dict(type='ValLoop')
