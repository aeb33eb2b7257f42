# Tiny LLaVA-Grounding trained on the synthetic world on CPU (`make demo`).
# Same components, losses and set criterion as the 7B recipe; sizes and the
# schedule are toy-sized so that 2 CPU cores train it in about 10 minutes.
# Test: REC Acc@0.5 + RES gIoU/cIoU on every synthetic val expression;
# `..._synthetic-gvc-test.py` scores grounded visual chat (Grounding-Bench
# grounded P/R/F1).
_base_ = [
    '../_base_/models/llava_g_tiny.py',
    '../_base_/datasets/synthetic_llava_g.py',
    '../_base_/default_runtime.py',
]

max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_begin=max_iters + 1, val_interval=max_iters + 1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# AdamW with cosine decay after a 3 % warm-up (official HF Trainer
# recipe); lr raised for random tiny weights; backbone and deformable
# sampling offsets at 0.1x in the 7B recipe, 1x here (trained from scratch).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters,
         T_max=max_iters - 20, eta_min=0.)
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=max_iters,
                    by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=32)
