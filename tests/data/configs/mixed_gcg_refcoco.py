# Example: mix two grounding sources with fixed per-batch sampling ratios.
#
# mmengine's ConcatDataset joins the sources; mmdet's MultiSourceSampler (an
# infinite sampler, so use an iteration-based train loop) fills every batch
# with `source_ratio` parts of each source: here 1 GCG sample and 3 RefCOCO
# samples per batch of 4. Written for the tests/data fixtures; for real data
# change the roots and files only.
default_scope = 'mmgrounding'
custom_imports = dict(imports=['mmgrounding'], allow_failed_imports=False)

data_root = '{{ fileDirname }}/../'
img_prefix = dict(img_path=data_root + 'images/')

gcg = dict(
    type='GCGDataset',
    data_root=data_root + 'gcg/',
    format='grandf',
    split='train',
    data_prefix=img_prefix,
    filter_cfg=dict(filter_empty=True),
    pipeline=[])
refcoco = dict(
    type='RefCOCOGroundingDataset',
    data_root=data_root,
    ann_file='coco/instances.json',
    split_file='refcoco/refs(unc).p',
    split='train',
    max_refs_per_image=1,
    data_prefix=img_prefix,
    filter_cfg=dict(filter_empty=True),
    pipeline=[])

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(
        type='mmdet.MultiSourceSampler',
        batch_size=4,
        source_ratio=[1, 3],
        shuffle=True,
        seed=0),
    batch_sampler=None,
    dataset=dict(type='ConcatDataset', datasets=[gcg, refcoco]))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=10)
