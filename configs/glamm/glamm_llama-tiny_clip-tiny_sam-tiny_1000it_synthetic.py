# Tiny GLaMM trained on the synthetic world on CPU: what `make demo` runs.
# Same components, losses and optimiser as the 7B recipe; sizes and the
# schedule are toy-sized so that 2 CPU cores train it in under 10 minutes.
_base_ = [
    '../_base_/models/glamm_tiny.py',
    '../_base_/datasets/synthetic_glamm.py',
    '../_base_/default_runtime.py',
]

# CLIP trains here and select_layers (-3, -2) never read its last layer:
# drop it (and the pooling norm) so that every parameter gets a gradient and
# DDP needs no find_unused_parameters; the computed features do not change.
model = dict(vision_encoder=dict(drop_unused_layers=True))

max_iters = 1000
# no validation while training: tools/test.py scores the final checkpoint
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_begin=max_iters + 1, val_interval=max_iters + 1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# GLaMM's optimiser (AdamW, betas (0.9, 0.95), no weight decay, clip 1.0,
# linear warm-up then linear decay to 0 = official WarmupDecayLR) with a
# higher lr (1e-3; official 3e-4) for a random tiny model and 1000 steps.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=100),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False,
         begin=100, end=max_iters)
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=max_iters,
                    by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=32)
