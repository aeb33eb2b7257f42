# LLaVA-G optimisation (official HF Trainer + DeepSpeed scripts): AdamW,
# weight decay 0, bf16, cosine decay after a 3 % linear warm-up. Backbone and
# deformable sampling offsets / reference points of the grounding model at
# 0.1x lr (llava_trainer_joint_train.py). Leaf configs set lr and max_iters.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(
        custom_keys={
            'grounding_head.backbone': dict(lr_mult=0.1),
            'sampling_offsets': dict(lr_mult=0.1),
            'reference_points': dict(lr_mult=0.1),
        }))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
