"""Local-only Hugging Face loading and the fingerprints of loaded weights."""
import ast
import os
import socket
import subprocess
import sys

import pytest
import torch

from mmgrounding.testing import build_tiny_tokenizer, tiny_llama_cfg
from mmgrounding.testing.scripts import REPO_ROOT
from mmgrounding.utils.hf_loading import (PretrainedPathError,
                                          check_local_dir,
                                          from_pretrained_local,
                                          load_pretrained_model,
                                          pretrained_source,
                                          tensor_fingerprint)


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection fails the test (and hub offline mode is off,
    so only our own check can stop a download)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f'network access attempted: {args}')

    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    monkeypatch.delenv('TRANSFORMERS_OFFLINE', raising=False)


def test_missing_path_names_the_key_and_the_path(tmp_path):
    missing = tmp_path / 'no_such_model'
    with pytest.raises(PretrainedPathError) as err:
        check_local_dir(
            str(missing), 'HFCausalLM.pretrained_model_name_or_path')
    msg = str(err.value)
    assert 'HFCausalLM.pretrained_model_name_or_path' in msg
    assert str(missing) in msg and 'does not exist' in msg
    # a file is not a model directory
    file = tmp_path / 'weights.bin'
    file.write_bytes(b'x')
    with pytest.raises(PretrainedPathError, match='is a file'):
        check_local_dir(str(file), 'k')


def test_language_model_with_a_missing_directory(tmp_path):
    from mmgrounding.models.language_models import HFCausalLM
    tok_dir = str(tmp_path / 'tok')
    build_tiny_tokenizer(tok_dir)
    missing = str(tmp_path / 'vicuna-7b-v1.5')
    with pytest.raises(PretrainedPathError) as err:
        HFCausalLM(
            pretrained_model_name_or_path=missing,
            tokenizer=dict(pretrained_model_name_or_path=tok_dir))
    assert 'HFCausalLM.pretrained_model_name_or_path' in str(err.value)
    assert missing in str(err.value)
    cfg = tiny_llama_cfg(str(tmp_path / 'no_tokenizer'))
    cfg.pop('type')
    with pytest.raises(PretrainedPathError,
                       match=r'HFCausalLM\.tokenizer\.pretrained_model'):
        HFCausalLM(**cfg)


def test_hub_id_is_refused_without_network(no_network):
    from transformers import AutoConfig, AutoTokenizer

    from mmgrounding.models.vision_encoders import HFVisionEncoder
    with pytest.raises(PretrainedPathError) as err:
        from_pretrained_local(AutoConfig, 'lmsys/vicuna-7b-v1.5',
                              'HFCausalLM.pretrained_model_name_or_path')
    msg = str(err.value)
    assert "'lmsys/vicuna-7b-v1.5'" in msg and 'hub id' in msg
    assert 'never downloads' in msg
    with pytest.raises(PretrainedPathError,
                       match=r'HFVisionEncoder\.pretrained_model_name_or_path'
                       r".*'openai/clip-vit-large-patch14-336'"):
        HFVisionEncoder(
            pretrained_model_name_or_path='openai/clip-vit-large-patch14-336')
    with pytest.raises(PretrainedPathError, match='bert-base-uncased'):
        from_pretrained_local(AutoTokenizer, 'bert-base-uncased', 'tok')


def test_sam_hub_id_is_refused_without_network(no_network):
    from mmgrounding.models.grounding_heads.sam_grounding_head import \
        build_sam
    with pytest.raises(PretrainedPathError,
                       match=r"SAMGroundingHead\.sam\.pretrained_model_name"
                       r".*'facebook/sam-vit-huge'"):
        build_sam('facebook/sam-vit-huge')


def test_local_files_only_is_always_passed(tmp_path):
    calls = []

    class Loader:

        @classmethod
        def from_pretrained(cls, path, **kwargs):
            calls.append((path, kwargs))
            return torch.nn.Linear(2, 2)

    from_pretrained_local(Loader, str(tmp_path), 'k', revision='main')
    assert calls == [(str(tmp_path), dict(revision='main',
                                          local_files_only=True))]
    with pytest.raises(ValueError, match='local_files_only=False'):
        from_pretrained_local(Loader, str(tmp_path), 'k',
                              local_files_only=False)
    model = load_pretrained_model(Loader, str(tmp_path), 'Linear.path')
    source = pretrained_source(model)
    assert source.key == 'Linear.path' and source.path == str(tmp_path)
    assert set(source.tensors) == {'weight', 'bias'}
    assert source.tensors['weight'] == tensor_fingerprint(model.weight)


def test_fingerprint_sees_values_shape_and_dtype():
    torch.manual_seed(0)
    w = torch.randn(64, 48)
    fp = tensor_fingerprint(w)
    assert fp == tensor_fingerprint(w.clone())
    assert len(fp) == 16
    # a low-rank update (merged LoRA) touches every sampled value
    delta = 1e-3 * torch.randn(64, 2) @ torch.randn(2, 48)
    assert tensor_fingerprint(w + delta) != fp
    # one changed value at a sampled position (the first) is seen
    w2 = w.clone()
    w2[0, 0] += 1
    assert tensor_fingerprint(w2) != fp
    assert tensor_fingerprint(w.reshape(48, 64)) != fp
    assert tensor_fingerprint(w.to(torch.bfloat16)) != tensor_fingerprint(
        w.to(torch.float16))
    assert tensor_fingerprint(w.t()) == tensor_fingerprint(w.t().contiguous())
    meta = torch.empty(3, 4, device='meta')
    assert tensor_fingerprint(meta).startswith('meta:')


_PROBE = """
import importlib.abc, importlib.machinery, importlib.util, os, sys, types
HEAVY = ('mmgrounding', 'transformers', 'huggingface_hub')
seen = {}

class Probe(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # records the offline variables when a heavy package is first imported;
    # mmgrounding itself is replaced by an empty module (fast)
    def find_spec(self, name, path, target=None):
        if name in HEAVY and name not in seen:
            seen[name] = (os.environ.get('HF_HUB_OFFLINE'),
                          os.environ.get('TRANSFORMERS_OFFLINE'))
        if name == 'mmgrounding':
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        pass

sys.meta_path.insert(0, Probe())
for tool in ('tools/train.py', 'tools/test.py'):
    seen.clear()
    sys.modules.pop('mmgrounding', None)
    os.environ.pop('HF_HUB_OFFLINE', None)
    os.environ.pop('TRANSFORMERS_OFFLINE', None)
    spec = importlib.util.spec_from_file_location('tool', tool)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    print(tool, sorted(seen.items()))
"""


@pytest.mark.slow  # ~7 s: fresh interpreters (keeps make test-fast < 5 min)
def test_tools_put_the_hub_offline_before_importing_transformers():
    """tools/train.py and test.py set offline mode before anything that
    imports transformers (mmgrounding does) is imported."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE')
    }
    out = subprocess.run([sys.executable, '-c', _PROBE],
                         env=env,
                         cwd=REPO_ROOT,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    # the probe's lines (mmengine's runner imports deepspeed, which logs)
    lines = [ln for ln in out.stdout.strip().splitlines()
             if ln.startswith('tools/')]
    assert [ln.split(' ', 1)[0] for ln in lines] == [
        'tools/train.py', 'tools/test.py'], out.stdout
    for line in lines:
        tool, seen = line.split(' ', 1)
        seen = dict(ast.literal_eval(seen))
        assert seen.get('mmgrounding') == ('1', '1'), line
        for name, env_at_import in seen.items():
            assert env_at_import == ('1', '1'), line
