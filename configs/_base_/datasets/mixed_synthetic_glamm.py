# Several GLaMM sources of the synthetic world mixed with fixed sampling
# ratios, as GLaMM fine-tunes on a mix of datasets (its combined recipe draws
# referring segmentation, GCG and region captions with per-source rates;
# docs/datasets.md).
#
# mmengine's ConcatDataset joins the sources; mmdet's MultiSourceSampler fills
# EVERY batch with `source_ratio` parts of each source (here 12 refseg +
# 12 GCG + 4 RefCOCOg region captions + 4 VG region captions per batch of
# 32), whatever the sizes of the sources. It is an infinite sampler: use an
# iteration-based train loop. Dataset dicts come from synthetic_sources.py;
# for the real data, swap in dicts with the official roots and files.
_base_ = ['./synthetic_sources.py']

train_batch_size = 32
train_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(
        type='mmdet.MultiSourceSampler',
        batch_size=train_batch_size,
        source_ratio=[3, 3, 1, 1],
        shuffle=True,
        seed=0),
    batch_sampler=None,
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            {{_base_.refcoco_refseg_glamm}},
            {{_base_.gcg_grandf_glamm}},
            {{_base_.region_caption_refcocog_glamm}},
            {{_base_.region_caption_vg_glamm}},
        ]))

val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset={{_base_.gcg_eval_glamm}})
test_dataloader = val_dataloader
val_evaluator = dict(type='GCGMetric')
test_evaluator = val_evaluator
