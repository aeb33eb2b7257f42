from .random_state_hook import (RNG_STATE_KEY, RandomStateCheckpointHook,
                                capture_rng_state, restore_rng_state)
from .trainable_weights_hook import TrainableWeightsCheckpointHook
from .weights_only_checkpoint_hook import (PortableHistoryBuffer,
                                           WeightsOnlyCheckpointHook)

__all__ = [
    'TrainableWeightsCheckpointHook', 'PortableHistoryBuffer',
    'WeightsOnlyCheckpointHook', 'RandomStateCheckpointHook',
    'RNG_STATE_KEY', 'capture_rng_state', 'restore_rng_state'
]
