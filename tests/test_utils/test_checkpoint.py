"""mmengine checkpoints stay loadable with torch.load(weights_only=True)."""
import pickle

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmgrounding  # noqa: F401  (allow-lists the safe globals)


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return out


class ToyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((2, ), float(i)))


def _runner(work_dir, resume=False, max_iters=2):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', interval=1, by_epoch=False)),
        custom_hooks=[dict(type='WeightsOnlyCheckpointHook')],
        resume=resume,
        default_scope='mmgrounding',
        # a fresh message hub per runner (instances are keyed by this name)
        experiment_name=f'{work_dir.name}_{resume}_{max_iters}')


def test_resume_with_weights_only_default(tmp_path):
    _runner(tmp_path).train()
    ckpt = tmp_path / 'iter_2.pth'
    state = torch.load(ckpt, weights_only=True)  # what mmengine now does
    assert 'message_hub' in state and 'optimizer' in state
    runner = _runner(tmp_path, resume=True, max_iters=4)
    runner.train()
    assert runner.iter == 4
    assert (tmp_path / 'iter_4.pth').exists()


class Evil:

    def __reduce__(self):
        return (print, ('unpickled arbitrary code',))


def test_plain_mmengine_checkpoint_needs_the_hook(tmp_path):
    """Without the hook the history buffers pickle methods via getattr."""
    runner = _runner(tmp_path)
    runner._hooks = [
        h for h in runner._hooks
        if type(h).__name__ != 'WeightsOnlyCheckpointHook'
    ]
    runner.train()
    with pytest.raises(pickle.UnpicklingError, match='getattr'):
        torch.load(tmp_path / 'iter_2.pth', weights_only=True)


def test_arbitrary_objects_are_still_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
