"""Save checkpoints that ``torch.load(weights_only=True)`` can read back."""
from typing import Dict

from mmengine.hooks import Hook
from mmengine.logging.history_buffer import HistoryBuffer

from mmgrounding.registry import HOOKS


class PortableHistoryBuffer(HistoryBuffer):
    """A ``HistoryBuffer`` that pickles without its statistics methods.

    mmengine's buffer pickles ``HistoryBuffer.min`` & co. through
    ``getattr``, which the weights-only unpickler rightly refuses (allowing
    ``getattr`` would let a file call any attribute of an allowed type). The
    methods live on the class anyway and are restored by ``__setstate__``.
    """

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop('statistics_methods', None)
        return state


def to_portable(buffer: HistoryBuffer) -> PortableHistoryBuffer:
    """Copy a history buffer into a :class:`PortableHistoryBuffer`."""
    portable = PortableHistoryBuffer.__new__(PortableHistoryBuffer)
    state = {
        k: v
        for k, v in buffer.__dict__.items() if k != 'statistics_methods'
    }
    portable.__setstate__(state)
    return portable


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Make the message-hub state of a checkpoint weights-only loadable.

    mmengine resumes with plain ``torch.load``, which defaults to
    ``weights_only=True`` since torch 2.6; together with the allow-list in
    :mod:`mmgrounding.utils.checkpoint` this keeps ``--resume`` working without
    ever unpickling arbitrary objects.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        hub = checkpoint.get('message_hub', {})
        scalars = hub.get('log_scalars', {})
        for key, buffer in list(scalars.items()):
            if isinstance(buffer, HistoryBuffer) and not isinstance(
                    buffer, PortableHistoryBuffer):
                scalars[key] = to_portable(buffer)
