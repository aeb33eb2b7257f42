# mmdet's runtime (hooks, environment, logging, load/resume), with our scope,
# our package import, our checkpoint hooks and our visualizer. Types set here
# are prefixed: dicts inherited from an mmdet:: base are built in mmdet's
# scope.
_base_ = ['mmdet::_base_/default_runtime.py']

default_scope = 'mmgrounding'
custom_imports = dict(imports=['mmgrounding'], allow_failed_imports=False)

custom_hooks = [
    dict(type='TrainableWeightsCheckpointHook'),
    dict(type='WeightsOnlyCheckpointHook'),
    dict(type='RandomStateCheckpointHook'),  # RNG states, for bit-exact resume
]
visualizer = dict(type='mmgrounding.GroundingVisualizer')
