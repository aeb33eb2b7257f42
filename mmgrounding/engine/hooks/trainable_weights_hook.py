"""Checkpoint only what trains: LoRA adapters, new token rows, heads."""
from typing import Dict, List, Set

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmgrounding.registry import HOOKS


def pretrained_prefixes(model) -> List[str]:
    """State-dict prefixes of submodules loaded by ``from_pretrained``.

    A transformers model built from a local directory records it in
    ``name_or_path``; one built from a config (tiny random models) does not,
    so its frozen weights exist nowhere but in our checkpoint.
    """
    from transformers import PreTrainedModel
    prefixes = []
    for name, module in model.named_modules():
        if isinstance(module, PreTrainedModel) and getattr(
                module, 'name_or_path', ''):
            prefixes.append(f'{name}.' if name else '')
    return prefixes


def trainable_state_keys(model) -> Set[str]:
    """Names of the state-dict entries that belong to trained modules.

    A parameter counts when it requires grad; a buffer counts when its module
    owns a trainable parameter (e.g. BatchNorm running statistics).
    """
    keys = set()
    for module_name, module in model.named_modules():
        own_params = list(module.named_parameters(recurse=False))
        trains = any(p.requires_grad for _, p in own_params)
        prefix = f'{module_name}.' if module_name else ''
        for name, param in own_params:
            if param.requires_grad:
                keys.add(prefix + name)
        if trains:
            for name, _ in module.named_buffers(recurse=False):
                keys.add(prefix + name)
    return keys


@HOOKS.register_module()
class TrainableWeightsCheckpointHook(Hook):
    """Drop frozen weights from every checkpoint the runner saves.

    A 7B GLaMM checkpoint is ~15 GB, but only ~1 GB trains (LoRA, embeddings,
    lm_head, mask decoder, projections); the frozen parts come back from their
    pretrained directories when the model is built, so ``load_from`` and
    ``--resume`` still restore the full model (loading is non-strict). Only
    frozen tensors of submodules loaded from a directory are dropped: frozen
    weights of randomly initialised parts (tiny models, SAM's random Fourier
    matrix built from a config) are kept, they cannot be restored otherwise.
    """

    priority = 'LOW'

    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        keep = trainable_state_keys(model)
        restorable = tuple(pretrained_prefixes(model))
        state = checkpoint['state_dict']
        dropped = [
            k for k in state
            if k not in keep and restorable and k.startswith(restorable)
        ]
        for key in dropped:
            del state[key]
        checkpoint.setdefault('meta', {})['trainable_only'] = True
        runner.logger.info(
            f'TrainableWeightsCheckpointHook: saved {len(state)} trained '
            f'tensors, left out {len(dropped)} frozen ones.')
