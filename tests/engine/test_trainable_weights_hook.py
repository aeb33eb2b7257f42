"""Checkpoints keep only trained tensors (and buffers of trained modules)."""
import torch
from torch import nn

from mmgrounding.engine.hooks import (TrainableWeightsCheckpointHook,
                                      trainable_state_keys)


class Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(3, 3)
        self.head = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
        self.frozen_bn = nn.BatchNorm1d(3)
        for p in list(self.frozen.parameters()) + list(
                self.frozen_bn.parameters()):
            p.requires_grad = False


def test_trainable_state_keys():
    keys = trainable_state_keys(Net())
    assert keys == {
        'head.0.weight', 'head.0.bias', 'head.1.weight', 'head.1.bias',
        'head.1.running_mean', 'head.1.running_var',
        'head.1.num_batches_tracked'
    }


class _Logger:

    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)


class _Runner:

    def __init__(self, model):
        self.model = model
        self.logger = _Logger()


def test_hook_drops_frozen_weights_and_reload_is_exact():
    net = Net()
    checkpoint = dict(state_dict=net.state_dict(), meta={})
    runner = _Runner(net)
    TrainableWeightsCheckpointHook().before_save_checkpoint(runner, checkpoint)
    assert set(checkpoint['state_dict']) == trainable_state_keys(net)
    assert checkpoint['meta']['trainable_only'] is True
    assert 'left out 7 frozen' in runner.logger.lines[0]

    other = Net()
    other.frozen.load_state_dict(net.frozen.state_dict())
    other.frozen_bn.load_state_dict(net.frozen_bn.state_dict())
    missing, unexpected = other.load_state_dict(
        checkpoint['state_dict'], strict=False)
    assert not unexpected
    assert set(missing) == {
        'frozen.weight', 'frozen.bias', 'frozen_bn.weight', 'frozen_bn.bias',
        'frozen_bn.running_mean', 'frozen_bn.running_var',
        'frozen_bn.num_batches_tracked'
    }
    for key, value in net.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
