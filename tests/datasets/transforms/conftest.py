"""Fixtures for the grounding transform tests."""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import pytest  # noqa: E402
from grounding_fixtures import build_tiny_tokenizer, make_record  # noqa: E402


@pytest.fixture(scope='session')
def tokenizer_path(tmp_path_factory):
    return build_tiny_tokenizer(str(tmp_path_factory.mktemp('tiny_tok')))


@pytest.fixture
def record():
    return make_record()
