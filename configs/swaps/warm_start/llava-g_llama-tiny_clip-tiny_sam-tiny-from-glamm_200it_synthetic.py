# Swap with trained parts: the SAM head on LLaVA-Grounding, both sides
# warm-started from trained tiny models, then fine-tuned together.
#   CLIP, projector, LM (<g_s> <g_e> <seg> rows included): the tiny LLaVA-G
#     of `make demo` (`load_from`; its OpenSeeD keys are left unused);
#   SAM head + seg projector: the tiny GLaMM of `make demo` (mmengine
#     `Pretrained` init with a key prefix, applied before `load_from`).
# 200 iterations then teach the GLaMM mask decoder to read LLaVA-G's <seg>
# states. Point the three paths elsewhere with --cfg-options
#   load_from=... model.grounding_head.init_cfg.checkpoint=...
#   model.seg_projector.init_cfg.checkpoint=...
_base_ = ['../llava-g_llama-tiny_clip-tiny_sam-tiny_600it_synthetic.py']

glamm_checkpoint = 'work_dirs/glamm_tiny_demo/iter_1000.pth'
load_from = 'work_dirs/llava_g_tiny_demo/iter_600.pth'

model = dict(
    seg_projector=dict(init_cfg=dict(
        type='Pretrained', checkpoint=glamm_checkpoint,
        prefix='seg_projector.')),
    grounding_head=dict(init_cfg=dict(
        type='Pretrained', checkpoint=glamm_checkpoint,
        prefix='grounding_head.')))

max_iters = 200
train_cfg = dict(max_iters=max_iters, val_begin=max_iters + 1,
                 val_interval=max_iters + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters,
         T_max=max_iters - 20, eta_min=0.)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
