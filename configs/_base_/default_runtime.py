# Runtime shared by every mmgrounding config (mmdet's layout, our visualizer).
default_scope = 'mmgrounding'
custom_imports = dict(imports=['mmgrounding'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='mmdet.DetVisualizationHook'))
custom_hooks = [
    dict(type='TrainableWeightsCheckpointHook'),
    dict(type='WeightsOnlyCheckpointHook')
]
custom_hooks.append(dict(type='RandomStateCheckpointHook'))  # RNG for resume

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='GroundingVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
