"""Report what a checkpoint left out; the filtering lives in the model.

Leaving frozen weights out of a checkpoint used to happen here, in
``before_save_checkpoint``; it moved into the model's ``state_dict``
(:class:`mmgrounding.models.utils.trainable_state.TrainableStateDictMixin`),
because DeepSpeed and FSDP save paths never call checkpoint hooks and because
a hook cannot tell a frozen tensor that still equals its pretrained directory
from one that a ``load_from`` replaced. This hook stays so that configs
naming it keep working; it only logs what was left out and warns when the
model does not filter at all.
"""
from typing import Dict

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmgrounding.registry import HOOKS


@HOOKS.register_module()
class TrainableWeightsCheckpointHook(Hook):
    """Log the left-out manifest of every checkpoint the runner saves."""

    priority = 'LOW'

    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        from mmgrounding.models.utils.trainable_state import (
            TrainableStateDictMixin, manifest_of)
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not isinstance(model, TrainableStateDictMixin):
            runner.logger.warning(
                f'TrainableWeightsCheckpointHook: {type(model).__name__} '
                'does not inherit TrainableStateDictMixin; the checkpoint '
                'holds every tensor.')
            return
        state = checkpoint.get('state_dict', {})
        manifest = manifest_of(state)
        parts = {} if manifest is None else manifest['parts']
        left_out = sum(len(p['dropped']) for p in parts.values())
        sources = ', '.join(f"{path or '<model>'} <- {p['source']}"
                            for path, p in parts.items()) or 'none'
        runner.logger.info(
            f'TrainableWeightsCheckpointHook: {len(state)} entries saved, '
            f'{left_out} frozen tensors left out (restored from their '
            f'pretrained directories: {sources}).')
