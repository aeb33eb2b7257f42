# GLaMM-RefSeg: fine-tune GranD-pretrained GLaMM on RefCOCO, RefCOCO+ and
# RefCOCOg referring segmentation (official finetune_glamm_refsegm.sh:
# 5 epochs x 350 optimizer steps); tested with cIoU/gIoU on every expression
# of RefCOCOg (umd) val (the official script samples 3 per image, unseeded).
# Switch the test split with --cfg-options, e.g.
#   test_dataloader.dataset.split_file='refcoco/refs(unc).p'
#   test_dataloader.dataset.split=testA
_base_ = [
    '../_base_/models/glamm_vicuna7b_clipl336_sam-h.py',
    '../_base_/datasets/glamm_pipelines.py',
    '../_base_/schedules/glamm_adamw.py',
    '../_base_/default_runtime.py',
]
load_from = 'checkpoints/glamm_grand_pretrained_mmgrounding.pth'
refer_root = 'data/Refer_Segm/'

max_iters = 5 * 350 * 10  # epochs x steps x accumulative_counts
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=350 * 10)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=100 * 10),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=100 * 10, end=max_iters)
]


def _refer(name, refs, split, pipeline, **kwargs):
    return dict(
        type='RefCOCOGroundingDataset',
        source=name,
        data_root=refer_root,
        ann_file=f'{name}/instances.json',
        split_file=f'{name}/{refs}',
        split=split,
        task='refseg',
        data_prefix=dict(img_path='../coco_2014/train2014/'),
        pipeline=pipeline,
        **kwargs)


train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            _refer('refcoco', 'refs(unc).p', 'train',
                   {{_base_.glamm_train_pipeline}}, max_refs_per_image=3),
            _refer('refcoco+', 'refs(unc).p', 'train',
                   {{_base_.glamm_train_pipeline}}, max_refs_per_image=3),
            _refer('refcocog', 'refs(umd).p', 'train',
                   {{_base_.glamm_train_pipeline}}, max_refs_per_image=3),
        ]))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=_refer(
        'refcocog', 'refs(umd).p', 'val', {{_base_.glamm_test_pipeline}},
        one_per_expression=True, test_mode=True))
test_dataloader = val_dataloader
# GLaMM evaluates RES teacher-forced ("Sure, it is [SEG]."), not generated
model = dict(refseg_teacher_forcing=True)
val_evaluator = dict(type='RefSegGIoUMetric')
test_evaluator = val_evaluator
log_processor = dict(by_epoch=False)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=350 * 10))
