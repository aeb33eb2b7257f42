"""Bit-exact resume with ``RandomStateCheckpointHook``.

A tiny GLaMM with LoRA dropout 0.5 trains on a shuffled ``InfiniteSampler``
whose "pipeline" adds numpy and python random noise (``num_workers=0``, so it
draws from the main process's RNG, as mmdet transforms do). A run cut at
iteration 2 and resumed to 4 must reproduce the weights and per-iteration
losses of an uninterrupted 4-iteration run exactly; without the hook the
resumed losses differ (the test would fail), which shows the RNG restore is
what makes it exact.
"""
import copy
import random
import shutil

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmgrounding.engine.hooks import (RNG_STATE_KEY, capture_rng_state,
                                      restore_rng_state)
from mmgrounding.registry import MODELS
from mmgrounding.testing import (build_tiny_tokenizer, make_glamm_batch,
                                 tiny_glamm_cfg)

LORA = dict(r=4, lora_alpha=8, lora_dropout=0.5,
            target_modules=['q_proj', 'v_proj'])
PROMPTS = ['Describe <bbox> please.', 'Segment it.']
ANSWERS = ['<p> a red circle </p> [SEG] on the left.', 'It is [SEG].']
HOOKS = [
    dict(type='TrainableWeightsCheckpointHook'),
    dict(type='WeightsOnlyCheckpointHook')
]
RNG_HOOK = dict(type='RandomStateCheckpointHook')


class NoisyBatches(torch.utils.data.Dataset):
    """Pre-built batches; ``__getitem__`` adds numpy and python noise to the
    pixels, like a random augmentation running in the main process."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, idx):
        inputs, samples = self.batches[idx]
        inputs = dict(inputs)
        noise = np.random.randn(*inputs['clip_pixels'].shape) * 0.1
        inputs['clip_pixels'] = inputs['clip_pixels'] + torch.from_numpy(
            noise).float() * random.random()
        return dict(inputs=inputs, data_samples=samples)


class LossLog(Hook):
    """Record ``outputs['loss']`` of every training iteration."""

    def __init__(self):
        self.losses = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses[runner.iter + 1] = outputs['loss'].item()


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tok = str(tmp_path_factory.mktemp('tok'))
    build_tiny_tokenizer(tok)
    cfg = tiny_glamm_cfg(tok, lora=LORA)
    cfg['data_preprocessor'] = dict(type='BaseDataPreprocessor')
    model = MODELS.build(copy.deepcopy(cfg))
    batches = [
        make_glamm_batch(
            model, PROMPTS, ANSWERS, seed=s,
            region_boxes=[torch.tensor([[4., 4., 40., 40.]]),
                          torch.zeros(0, 4)]) for s in range(4)
    ]
    return cfg, NoisyBatches(batches)


def _runner(setup, work_dir, max_iters, rng_hook=True, **kwargs):
    cfg, dataset = setup
    log = LossLog()
    runner = Runner(
        model=copy.deepcopy(cfg),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dataset,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_size=1,
            num_workers=0,
            collate_fn=lambda items: items[0]),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=HOOKS + ([RNG_HOOK] if rng_hook else []) + [log],
        default_scope='mmgrounding',
        randomness=dict(seed=0),
        experiment_name=f'{work_dir.name}_{max_iters}',
        **kwargs)
    return runner, log


def _trained(runner):
    return {
        k: v.detach().clone()
        for k, v in runner.model.named_parameters() if v.requires_grad
    }


def test_rng_state_roundtrips_through_weights_only_load(tmp_path):
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random(),
                np.random.randn())  # randn uses the cached gaussian
    torch.save({RNG_STATE_KEY: state}, tmp_path / 's.pth')
    loaded = torch.load(tmp_path / 's.pth', weights_only=True)[RNG_STATE_KEY]
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    restore_rng_state(loaded)
    got = (torch.rand(3), np.random.rand(3), random.random(),
           np.random.randn())
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and got[3] == expected[3]


@pytest.mark.slow
def test_resume_is_bit_exact_and_needs_the_hook(setup, tmp_path):
    straight, log_straight = _runner(setup, tmp_path / 'straight', 4)
    straight.train()
    assert sorted(log_straight.losses) == [1, 2, 3, 4]

    cut, _ = _runner(setup, tmp_path / 'cut', 2)
    cut.train()
    saved = torch.load(tmp_path / 'cut' / 'iter_2.pth', weights_only=True)
    assert saved[RNG_STATE_KEY]['world_size'] == 1
    results = {}
    # the same checkpoint resumed with and without the hook: only the RNG
    # restore differs between the two resumed runs
    for use_hook in (True, False):
        work = tmp_path / f'resume_hook{int(use_hook)}'
        shutil.copytree(tmp_path / 'cut', work)
        resumed, log = _runner(setup, work, 4, rng_hook=use_hook,
                               resume=True)
        resumed.train()
        assert resumed.iter == 4 and sorted(log.losses) == [3, 4]
        results[use_hook] = (log.losses, _trained(resumed))

    losses, weights = results[True]
    ref = _trained(straight)
    assert losses == {i: log_straight.losses[i] for i in (3, 4)}
    assert weights.keys() == ref.keys()
    for key, value in weights.items():
        assert torch.equal(value, ref[key]), key
    # without the hook dropout and the noisy pipeline draw other numbers
    losses_off, weights_off = results[False]
    assert all(losses_off[i] != log_straight.losses[i] for i in (3, 4))
    assert any(not torch.equal(v, ref[k]) for k, v in weights_off.items())


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        return dict(loss=self.fc(inputs).pow(2).mean())


@pytest.mark.parametrize('interval,by_epoch,ok', [(4, False, True),
                                                  (3, False, False),
                                                  (1, True, False),
                                                  (2, True, True)])
def test_checkpoint_interval_must_align_with_accumulation(
        tmp_path, interval, by_epoch, ok):
    """accumulative_counts=2 with 3 batches per epoch: every 4 iterations or
    every 2 epochs (6 iterations) align, 3 iterations or 1 epoch do not."""
    data = [dict(inputs=torch.ones(2)) for _ in range(3)]
    runner = Runner(
        model=_Toy(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=1,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=by_epoch, max_epochs=2) if by_epoch else
        dict(by_epoch=False, max_iters=4),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.1), accumulative_counts=2),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=interval,
                            by_epoch=by_epoch)),
        custom_hooks=[RNG_HOOK],
        default_scope='mmgrounding')
    if ok:
        runner.train()
    else:
        with pytest.raises(ValueError, match='accumulative_counts=2'):
            runner.train()


class _SeenIndex(Hook):

    def __init__(self):
        self.seen = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.seen[runner.iter + 1] = int(data_batch['inputs'][0, 0])


def _index_runner(work_dir, max_iters, resume=False):
    seen = _SeenIndex()
    runner = Runner(
        model=_Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=[dict(inputs=torch.tensor([float(i), 1.]))
                     for i in range(16)],
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_size=1,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        custom_hooks=[
            dict(type='WeightsOnlyCheckpointHook'), RNG_HOOK, seen
        ],
        default_scope='mmgrounding',
        resume=resume,
        experiment_name=f'seen_{max_iters}_{int(resume)}')  # seed: random
    return runner, seen


def test_resume_without_fixed_seed_continues_the_checkpoint_shuffle(
        tmp_path):
    """No ``randomness.seed``: the resumed runner draws a new seed and builds
    its sampler with it before ``resume`` re-applies the checkpoint's; the
    hook re-seeds the sampler, so iterations 3-4 see what an uninterrupted
    run with the checkpoint's seed sees."""
    from mmengine.dataset import InfiniteSampler
    cut, seen_cut = _index_runner(tmp_path, 2)
    cut.train()
    seed = torch.load(tmp_path / 'iter_2.pth', weights_only=True)['meta'][
        'seed']
    order = iter(InfiniteSampler(list(range(16)), shuffle=True, seed=seed))
    expected = [next(order) for _ in range(4)]
    assert [seen_cut.seen[i] for i in (1, 2)] == expected[:2]
    resumed, seen = _index_runner(tmp_path, 4, resume=True)
    resumed.train()
    assert [seen.seen[i] for i in (3, 4)] == expected[2:]
