"""TrainableWeightsCheckpointHook only reports: the model filters.

The filtering itself is tested in tests/models/test_trainable_state.py
(Runner save / load_from / resume, plain state_dict, refusals).
"""
import torch
from mmengine.model import BaseModel
from torch import nn

from mmgrounding.engine.hooks import TrainableWeightsCheckpointHook
from mmgrounding.models.utils.trainable_state import (MANIFEST_KEY,
                                                      TrainableStateDictMixin)
from mmgrounding.utils.hf_loading import load_pretrained_model


class _Logger:

    def __init__(self):
        self.infos, self.warnings = [], []

    def info(self, msg):
        self.infos.append(msg)

    def warning(self, msg):
        self.warnings.append(msg)


class _Runner:

    def __init__(self, model):
        self.model = model
        self.logger = _Logger()


class Plain(BaseModel):

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 2)

    def forward(self, *args, **kwargs):
        raise NotImplementedError


class Filtering(TrainableStateDictMixin, Plain):

    def __init__(self, bert_dir):
        super().__init__()
        from transformers import BertModel
        self.frozen = load_pretrained_model(BertModel, bert_dir, 'Net.bert')
        self.frozen.requires_grad_(False)


def _bert_dir(tmp_path):
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=10, hidden_size=4, num_hidden_layers=1,
                     num_attention_heads=1, intermediate_size=4,
                     max_position_embeddings=8)
    BertModel(cfg).save_pretrained(tmp_path)
    return str(tmp_path)


def test_hook_leaves_the_state_dict_alone_and_reports(tmp_path):
    net = Filtering(_bert_dir(tmp_path))
    state = net.state_dict()
    frozen = {f'frozen.{k}' for k in net.frozen.state_dict()}
    assert not frozen & set(state) and MANIFEST_KEY in state
    checkpoint = dict(state_dict=dict(state), meta={})
    runner = _Runner(net)
    TrainableWeightsCheckpointHook().before_save_checkpoint(runner, checkpoint)
    assert checkpoint['state_dict'].keys() == state.keys()
    line = runner.logger.infos[0]
    assert f'{len(frozen)} frozen tensors left out' in line
    assert f'frozen <- {tmp_path}' in line


def test_hook_warns_when_the_model_does_not_filter():
    net = Plain()
    checkpoint = dict(state_dict=net.state_dict(), meta={})
    runner = _Runner(net)
    TrainableWeightsCheckpointHook().before_save_checkpoint(runner, checkpoint)
    assert set(checkpoint['state_dict']) == {'head.weight', 'head.bias'}
    assert 'does not inherit TrainableStateDictMixin' in \
        runner.logger.warnings[0]


class _SeqLoader:
    """A 'pretrained directory' holding Linear + BatchNorm (seeded)."""

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


class WithPart(TrainableStateDictMixin, Plain):

    def __init__(self, path):
        super().__init__()
        self.part = load_pretrained_model(_SeqLoader, path, 'part')


def test_buffers_of_trained_modules_are_kept(tmp_path):
    """Running statistics of a trained BatchNorm inside a pretrained part
    are trained state (kept); the frozen Linear of that part is left out,
    and so are the statistics once the BatchNorm is frozen too."""
    net = WithPart(str(tmp_path))
    net.part[0].requires_grad_(False)
    state = net.state_dict()
    assert 'part.0.weight' not in state and 'part.0.bias' not in state
    assert {'part.1.weight', 'part.1.running_mean', 'part.1.running_var',
            'part.1.num_batches_tracked'} <= set(state)
    net.part[1].requires_grad_(False)
    state = net.state_dict()
    assert not {k for k in state if k.startswith('part.')}
