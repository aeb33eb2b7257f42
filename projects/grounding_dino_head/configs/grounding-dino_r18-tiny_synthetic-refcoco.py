# A tiny GroundingDINO (mmdet's own GroundingDINO, ResNet-18 at half
# width, 256-d transformer with narrow FFNs, 1 encoder / 2 decoder layers,
# 30 queries) trained from scratch on the synthetic world's referring
# expressions (RefCOCO converted to ODVG grounding records, the
# MM-Grounding-DINO recipe's format) on CPU.
# Its language model is a tiny BERT in a local directory (nothing is
# downloaded): build both inputs first,
#   python projects/grounding_dino_head/tools/build_tiny_bert.py \
#       work_dirs/grounding_dino_head/tiny_bert --data-root data/synthetic
#   python projects/grounding_dino_head/tools/refcoco_to_grounding.py \
#       data/synthetic work_dirs/grounding_dino_head/data
# then `python tools/train.py <this config>` (or mmdet's tools/train.py).
# Evaluated on synthetic val REC (RECAccMetric + mmdet RefExpMetric, one
# expression per sample, tokens_positive=-1: GroundingDINO's REC mode).
_base_ = 'mmdet::grounding_dino/grounding_dino_r50_scratch_8xb2_1x_coco.py'
custom_imports = dict(
    imports=['mmgrounding',
             'projects.grounding_dino_head.grounding_dino_head'],
    allow_failed_imports=False)

# converted annotations live outside the (read-only) world: data_root is
# the working directory, images are read from the world
data_root = ''
image_dir = 'data/synthetic/images/'
bert_dir = 'work_dirs/grounding_dino_head/tiny_bert'
ann_dir = 'work_dirs/grounding_dino_head/data/'
image_size = 128
# mmdet's encoder hard-codes a 256-d text position embedding
# (get_text_sine_pos_embed(num_pos_feats=256)): the width stays 256
embed_dims = 256
max_text_len = 64
max_iters = 400
base_lr = 1e-3

model = dict(
    num_queries=30,
    num_feature_levels=3,
    data_preprocessor=dict(pad_size_divisor=32),
    language_model=dict(
        _delete_=True,
        type='mmgrounding.LocalBertModel',
        name=bert_dir,
        max_tokens=max_text_len,
        pad_to_max=False,
        use_sub_sentence_represent=True,
        special_tokens_list=['[CLS]', '[SEP]', '.', '?'],
        add_pooling_layer=False),
    backbone=dict(
        depth=18,
        base_channels=32,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(
        in_channels=[64, 128, 256],
        out_channels=embed_dims,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=3),
    encoder=dict(
        num_layers=1,
        num_cp=0,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_levels=3,
                               num_heads=4, num_points=4),
            ffn_cfg=dict(embed_dims=embed_dims,
                         feedforward_channels=2 * embed_dims)),
        text_layer_cfg=dict(
            self_attn_cfg=dict(num_heads=4, embed_dims=embed_dims),
            ffn_cfg=dict(embed_dims=embed_dims,
                         feedforward_channels=2 * embed_dims)),
        fusion_layer_cfg=dict(
            v_dim=embed_dims, l_dim=embed_dims, embed_dim=embed_dims,
            num_heads=4)),
    decoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
            cross_attn_text_cfg=dict(embed_dims=embed_dims, num_heads=4),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=4,
                                num_levels=3, num_points=4),
            ffn_cfg=dict(embed_dims=embed_dims,
                         feedforward_channels=2 * embed_dims))),
    positional_encoding=dict(num_feats=embed_dims // 2),
    bbox_head=dict(
        num_classes=max_text_len,
        contrastive_cfg=dict(max_text_len=max_text_len)),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=30)),
    test_cfg=dict(max_per_img=10))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    # no flips: expressions say "left of" / "rightmost"
    dict(type='FixScaleResize', scale=(image_size, image_size),
         keep_ratio=True),
    dict(type='RandomSamplingNegPos', tokenizer_name=bert_dir,
         max_tokens=max_text_len),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'flip', 'flip_direction', 'text',
                   'custom_entities', 'tokens_positive'))
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='FixScaleResize', scale=(image_size, image_size),
         keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'text', 'custom_entities',
                   'tokens_positive'))
]

train_dataloader = dict(
    _delete_=True,
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='ODVGDataset',
        data_root=data_root,
        ann_file=ann_dir + 'refcoco_train_odvg.jsonl',
        data_prefix=dict(img=image_dir),
        filter_cfg=dict(filter_empty_gt=False),
        return_classes=True,
        pipeline=train_pipeline))
val_dataloader = dict(
    _delete_=True,
    batch_size=16,
    num_workers=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='MDETRStyleRefCocoDataset',
        data_root=data_root,
        ann_file=ann_dir + 'final_refcoco_val.json',
        data_prefix=dict(img=image_dir),
        test_mode=True,
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='mmgrounding.RECAccMetric'),
    dict(type='RefExpMetric', ann_file=ann_dir + 'final_refcoco_val.json',
         topk=(1, 5, 10)),
]
test_evaluator = val_evaluator

train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=max_iters)
optim_wrapper = dict(
    optimizer=dict(lr=base_lr, weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=1.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, by_epoch=False,
         begin=50, end=max_iters, T_max=max_iters - 50),
]
# weights-only checkpoints stay loadable by torch>=2.6's torch.load
custom_hooks = [dict(type='mmgrounding.WeightsOnlyCheckpointHook')]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=16)
randomness = dict(seed=0)
