from .trainable_weights_hook import TrainableWeightsCheckpointHook
from .weights_only_checkpoint_hook import (PortableHistoryBuffer,
                                           WeightsOnlyCheckpointHook)

__all__ = [
    'TrainableWeightsCheckpointHook', 'PortableHistoryBuffer',
    'WeightsOnlyCheckpointHook'
]
