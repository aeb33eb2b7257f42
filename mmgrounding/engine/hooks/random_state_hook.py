"""Bit-exact resume: RNG states per rank, sampler seed, accumulation-aligned
checkpoints.

What mmengine 0.10.7 restores on ``resume``: epoch / iteration, optimizer,
schedulers, message hub and the *global seed* (``meta.seed``, re-applied with
``set_randomness``). ``IterBasedTrainLoop`` then replays ``iter`` batches
through the dataloader iterator (loops.py:277-284), so the sampler position
of an ``InfiniteSampler`` / ``DefaultSampler`` is reproduced by replay.

What it does not restore, and this hook does:

* the torch / numpy / python (and CUDA) RNG *states* at the checkpoint:
  re-seeding restarts every stream, so LoRA dropout, random data transforms
  and any sampling in the model draw other numbers after a resume. The states
  are gathered from every rank and stored as tensors / lists / ints under
  ``checkpoint['rng_state']`` (``torch.load(weights_only=True)`` reads them).
  They are restored *after* the loop's replay of the consumed batches and
  before the next batch is fetched, exactly where they were saved: with
  ``num_workers=0`` the data pipeline draws from the main process's RNG, and
  the replay would otherwise consume it again.
* the sampler seed when the config has no fixed ``randomness.seed``: the
  dataloader (and its sampler, seeded with the runner's fresh random seed) is
  built before ``resume`` re-applies the checkpoint's seed, so the resumed run
  would replay and continue another shuffle. The sampler is re-seeded with the
  checkpoint's seed and its iterator rebuilt before the replay.
* partial gradient accumulation (``OptimWrapper`` keeps it in ``.grad`` and
  its inner count, neither saved): a checkpoint interval that is not a
  multiple of ``accumulative_counts`` (DeepSpeed: the strategy's
  ``gradient_accumulation_steps``) would resume mid-accumulation. Such a
  configuration is refused before training starts.
"""
import random
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook

from mmgrounding.registry import HOOKS

#: Key of the per-rank RNG states in the checkpoint dict.
RNG_STATE_KEY = 'rng_state'


def capture_rng_state() -> dict:
    """This process's RNG states as weights-only-loadable values.

    Returns:
        ``dict(torch=uint8 tensor, cuda=list of uint8 tensors or None,
        numpy=dict(keys=uint32 tensor [624], pos, has_gauss, cached_gaussian),
        python=dict(version, state=int64 tensor [625], gauss_next))``.
    """
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    assert np_name == 'MT19937', np_name
    py_version, py_state, py_gauss = random.getstate()
    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return dict(
        torch=torch.get_rng_state().clone(),
        cuda=cuda,
        numpy=dict(
            keys=torch.from_numpy(np_keys.astype(np.int64)),
            pos=int(np_pos),
            has_gauss=int(np_has_gauss),
            cached_gaussian=float(np_cached)),
        python=dict(
            version=int(py_version),
            state=torch.tensor(py_state, dtype=torch.int64),
            gauss_next=py_gauss))


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state['torch'].cpu())
    if state.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
    npy = state['numpy']
    np.random.set_state(
        ('MT19937', npy['keys'].numpy().astype(np.uint32), int(npy['pos']),
         int(npy['has_gauss']), float(npy['cached_gaussian'])))
    py = state['python']
    random.setstate((int(py['version']), tuple(py['state'].tolist()),
                     py['gauss_next']))


class _RestoreAfterReplay:
    """Wrap a dataloader iterator: restore RNG states once ``skip`` batches
    (the loop's replay of already-trained batches) have been drawn."""

    def __init__(self, iterator, skip: int, state: dict) -> None:
        self._iterator = iterator
        self._left = skip
        self._state = state
        if skip == 0:
            self._restore()

    def _restore(self) -> None:
        if self._state is not None:
            restore_rng_state(self._state)
            self._state = None

    def __iter__(self):
        return self

    def __next__(self):
        if self._left == 0:
            self._restore()
        else:
            self._left -= 1
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


def _check_interval(interval: int, by_epoch: bool, counts: int,
                    iters_per_epoch: Optional[int]) -> None:
    step = interval * iters_per_epoch if by_epoch else interval
    if step % counts:
        unit = f'{interval} epoch(s) of {iters_per_epoch} iterations' \
            if by_epoch else f'{interval} iterations'
        raise ValueError(
            f'CheckpointHook interval ({unit}) is not a multiple of '
            f'optim_wrapper accumulative_counts={counts}: a checkpoint would '
            'be saved mid-accumulation and the accumulated gradients are not '
            'saved, so a resumed run would differ. Use an interval that is a '
            f'multiple of {counts}.')


@HOOKS.register_module()
class RandomStateCheckpointHook(Hook):
    """Save every rank's RNG states in checkpoints and restore them on
    resume; re-seed the sampler and refuse checkpoint intervals that split a
    gradient accumulation (see the module docstring).

    Args:
        strict_world_size: raise (True) or warn (False) when resuming with
            another number of ranks than the checkpoint was saved with (the
            states cannot be matched; training continues from the seed).
    """

    # after LoggerHook (BELOW_NORMAL), before CheckpointHook (VERY_LOW): the
    # states are gathered right before the checkpoint hook saves
    priority = 'LOW'

    def __init__(self, strict_world_size: bool = False) -> None:
        self.strict_world_size = strict_world_size
        self._pending: Optional[dict] = None
        self._resumed_seed: Optional[int] = None
        self._gathered: Optional[List[dict]] = None

    # -- saving ------------------------------------------------------------
    # ``Runner.save_checkpoint`` (and so ``before_save_checkpoint``) runs on
    # rank 0 only: a collective there would hang. Every rank gathers in the
    # train-iter / train-epoch hook where a CheckpointHook is about to save.
    def _gather_if_saving(self, runner, by_epoch: bool) -> None:
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or hook.interval <= 0 \
                    or hook.by_epoch != by_epoch:
                continue
            if by_epoch:
                saving = hook.every_n_epochs(
                    runner, hook.interval, hook.save_begin) or (
                        hook.save_last and hook.is_last_train_epoch(runner))
            else:
                saving = hook.every_n_train_iters(
                    runner, hook.interval, hook.save_begin) or (
                        hook.save_last and hook.is_last_train_iter(runner))
            if saving:
                self._gathered = all_gather_object(capture_rng_state())
                return

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._gather_if_saving(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_saving(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        world = get_world_size()
        states = self._gathered
        self._gathered = None
        if states is None:
            if world > 1:  # a save outside CheckpointHook: no gather ran
                runner.logger.warning(
                    'RandomStateCheckpointHook: checkpoint saved outside '
                    'CheckpointHook under distributed training; its RNG '
                    'states are not stored.')
                return
            states = [capture_rng_state()]
        checkpoint[RNG_STATE_KEY] = dict(world_size=world, ranks=states)

    # -- loading -----------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from (weights only): training starts afresh
        self._resumed_seed = checkpoint.get('meta', {}).get('seed')
        saved = checkpoint.get(RNG_STATE_KEY)
        if saved is None:
            runner.logger.warning(
                'RandomStateCheckpointHook: the checkpoint holds no RNG '
                'state; the resumed run continues from the seed only.')
            return
        world = get_world_size()
        if saved['world_size'] != world:
            msg = (f'RandomStateCheckpointHook: checkpoint saved with '
                   f'{saved["world_size"]} ranks, resuming with {world}: RNG '
                   'states are not restored.')
            if self.strict_world_size:
                raise RuntimeError(msg)
            runner.logger.warning(msg)
            return
        self._pending = saved['ranks'][get_rank()]

    def before_train(self, runner) -> None:
        self._check_accumulation(runner)
        if self._resumed_seed is not None:
            self._reseed_sampler(runner, self._resumed_seed)
        if self._pending is None:
            return
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):
            # IterBasedTrainLoop: the replay of runner.iter batches follows
            loop.dataloader_iterator = _RestoreAfterReplay(
                loop.dataloader_iterator, runner.iter, self._pending)
        else:
            # EpochBasedTrainLoop resumes at an epoch start: nothing replays
            restore_rng_state(self._pending)
        self._pending = None

    # -- helpers -----------------------------------------------------------
    @staticmethod
    def _reseed_sampler(runner, seed: int) -> None:
        """Give the sampler the checkpoint's seed if it was built with
        another one (no fixed ``randomness.seed``), before any replay."""
        loader = runner.train_loop.dataloader
        sampler = getattr(loader, 'sampler', None)
        if getattr(sampler, 'seed', seed) == seed:
            return
        runner.logger.info(
            f'RandomStateCheckpointHook: sampler seed {sampler.seed} -> '
            f'checkpoint seed {seed}')
        sampler.seed = seed
        if hasattr(sampler, '_indices_of_rank'):  # InfiniteSampler
            sampler.indices = sampler._indices_of_rank()
        loop = runner.train_loop
        iterator = getattr(loop, 'dataloader_iterator', None)
        if iterator is not None and hasattr(iterator, '_iterator'):
            iterator._iterator = iter(loader)

    @staticmethod
    def _check_accumulation(runner) -> None:
        wrappers = runner.optim_wrapper
        wrappers = getattr(wrappers, 'optim_wrappers', None) or {
            '': wrappers
        }
        counts = max(
            getattr(w, '_accumulative_counts', 1) for w in wrappers.values())
        # DeepSpeed accumulates inside its engine (DeepSpeedOptimWrapper has
        # no count of its own) and saves no partial gradients either
        ds_config = getattr(getattr(runner, 'strategy', None), 'config', None)
        if isinstance(ds_config, dict):
            counts = max(counts,
                         int(ds_config.get('gradient_accumulation_steps', 1)))
        if counts <= 1:
            return
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and hook.interval > 0:
                iters_per_epoch = None
                if hook.by_epoch:
                    iters_per_epoch = len(runner.train_dataloader)
                _check_interval(hook.interval, hook.by_epoch, counts,
                                iters_per_epoch)
