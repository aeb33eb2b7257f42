"""Checkpoints keep only trained tensors (and buffers of trained modules)."""
import torch
from torch import nn

from mmgrounding.engine.hooks import (TrainableWeightsCheckpointHook,
                                      pretrained_prefixes,
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


def test_hook_keeps_frozen_weights_not_loaded_from_a_directory():
    """Frozen random weights (tiny models) exist only in the checkpoint."""
    net = Net()
    checkpoint = dict(state_dict=net.state_dict(), meta={})
    TrainableWeightsCheckpointHook().before_save_checkpoint(
        _Runner(net), checkpoint)
    assert set(checkpoint['state_dict']) == set(net.state_dict())


def _bert_config():
    from transformers import BertConfig
    return BertConfig(vocab_size=10, hidden_size=4, num_hidden_layers=1,
                      num_attention_heads=1, intermediate_size=4,
                      max_position_embeddings=8)


def _with_pretrained_frozen_part(net, tmp_path):
    """Replace ``net.frozen`` by a tiny HF model loaded from a directory."""
    from transformers import BertModel
    if not (tmp_path / 'config.json').exists():
        BertModel(_bert_config()).save_pretrained(tmp_path)
    net.frozen = BertModel.from_pretrained(tmp_path)
    net.frozen.requires_grad_(False)
    return net


def test_pretrained_prefixes(tmp_path):
    net = _with_pretrained_frozen_part(Net(), tmp_path)
    assert pretrained_prefixes(net) == ['frozen.']
    from transformers import BertModel
    net.frozen = BertModel(_bert_config())  # from a config: not restorable
    assert pretrained_prefixes(net) == []


def test_hook_drops_frozen_weights_and_reload_is_exact(tmp_path):
    net = _with_pretrained_frozen_part(Net(), tmp_path)
    checkpoint = dict(state_dict=net.state_dict(), meta={})
    runner = _Runner(net)
    TrainableWeightsCheckpointHook().before_save_checkpoint(runner, checkpoint)
    frozen_keys = {f'frozen.{k}' for k in net.frozen.state_dict()}
    assert set(checkpoint['state_dict']) == set(
        net.state_dict()) - frozen_keys
    assert checkpoint['meta']['trainable_only'] is True
    assert f'left out {len(frozen_keys)} frozen' in runner.logger.lines[0]

    other = _with_pretrained_frozen_part(Net(), tmp_path)
    missing, unexpected = other.load_state_dict(
        checkpoint['state_dict'], strict=False)
    assert not unexpected
    assert set(missing) == frozen_keys
    for key, value in net.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
