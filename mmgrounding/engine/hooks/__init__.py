from .trainable_weights_hook import (TrainableWeightsCheckpointHook,
                                     pretrained_prefixes,
                                     trainable_state_keys)
from .weights_only_checkpoint_hook import (PortableHistoryBuffer,
                                           WeightsOnlyCheckpointHook)

__all__ = [
    'TrainableWeightsCheckpointHook', 'trainable_state_keys',
    'pretrained_prefixes',
    'PortableHistoryBuffer', 'WeightsOnlyCheckpointHook'
]
