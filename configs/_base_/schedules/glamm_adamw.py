# GLaMM optimisation (official train.py + DeepSpeed config): AdamW lr 3e-4,
# betas (0.9, 0.95), weight decay 0, gradient clipping 1.0, bf16; per-GPU
# batch 2 x 10 accumulation x 8 GPUs = 160 samples per optimizer step (paper:
# "batch size of 160"); WarmupDecayLR = linear warm-up over 100 steps, then
# linear decay to 0. Leaf configs set `max_iters` (optimizer steps x 10).
accumulative_counts = 10
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    accumulative_counts=accumulative_counts,
    optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.95), weight_decay=0.),
    clip_grad=dict(max_norm=1.0))
auto_scale_lr = dict(enable=False, base_batch_size=160)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
