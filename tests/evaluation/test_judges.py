"""OpenAIJudge against a fake OpenAI-compatible server on 127.0.0.1."""
import json
import logging
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mmengine.logging import MMLogger

from mmgrounding.evaluation import (EmbeddingJudge, JudgeError, OpenAIJudge,
                                    parse_score_pair, parse_yes_no)
from mmgrounding.registry import TASK_UTILS

KEY = 'sk-test-SECRET-4242'


class FakeAPI(BaseHTTPRequestHandler):
    """Fails requests whose text holds FAIL500 twice, answers SLOW ones
    late the first time, and checks the bearer key."""
    counts = {}
    lock = threading.Lock()

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        text = body['messages'][-1]['content']
        if self.headers.get('Authorization') != f'Bearer {KEY}':
            return self._send(401, {'error': 'bad key'})
        tag = 'FAIL500' if 'FAIL500' in text else (
            'SLOW' if 'SLOW' in text else 'ok')
        with self.lock:
            self.counts[tag] = self.counts.get(tag, 0) + 1
            n = self.counts[tag]
        if tag == 'FAIL500' and n <= 2:
            return self._send(500, {'error': 'boom'})
        if tag == 'SLOW' and n == 1:
            time.sleep(1.0)
        if '[Question]' in text:
            reply = '8 6\nA is more detailed.'
        else:
            reply = 'Yes.' if 'dog' in text else 'no'
        self._send(200, {'choices': [{'message': {'content': reply}}]})

    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        try:
            self.send_response(code)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server():
    FakeAPI.counts = {}
    srv = ThreadingHTTPServer(('127.0.0.1', 0), FakeAPI)
    srv.handle_error = lambda *a: None
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/v1'
    srv.shutdown()
    srv.server_close()


def make_judge(url, tmp_path, **kw):
    cfg = dict(
        type='OpenAIJudge',
        base_url=url,
        model='fake-gpt',
        api_key_env='FAKE_JUDGE_KEY',
        timeout=0.3,
        max_retries=3,
        backoff=0.01,
        max_workers=3,
        cache_dir=str(tmp_path / 'cache'))
    cfg.update(kw)
    return TASK_UTILS.build(cfg)


class ListHandler(logging.Handler):

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_retry_timeout_cache_and_secret(server, tmp_path, monkeypatch,
                                        capsys):
    monkeypatch.setenv('FAKE_JUDGE_KEY', KEY)
    logger = MMLogger.get_current_instance()
    handler = ListHandler()
    logger.addHandler(handler)
    judge = make_judge(server, tmp_path)
    assert isinstance(judge, OpenAIJudge)
    pairs = [('a dog', 'dog'), ('a car', 'person'), ('FAIL500 dog', 'dog'),
             ('SLOW dog', 'dog')]
    assert judge.match_phrases(pairs) == [True, False, True, True]
    assert FakeAPI.counts['FAIL500'] == 3  # two 500s, then success
    assert FakeAPI.counts['SLOW'] == 2  # one timeout, then success
    first = judge.num_requests
    assert first == 2 + 3 + 2
    rating = judge.rate_answers([
        dict(context='c', question='q', reference='r', answer='a')
    ])
    assert rating == [(8.0, 6.0)]
    # rerun with a fresh judge: everything comes from the disk cache
    again = make_judge(server, tmp_path)
    assert again.match_phrases(pairs) == [True, False, True, True]
    assert again.num_requests == 0 and again.num_cache_hits == 4
    # the key appears in no log, no repr, no cache file
    logger.removeHandler(handler)
    out = capsys.readouterr()
    logs = out.out + out.err + '\n'.join(handler.lines) + repr(judge)
    assert 'retry' in logs.lower()
    assert KEY not in logs
    for path in (tmp_path / 'cache').rglob('*.json'):
        assert KEY not in path.read_text()


def test_failures_are_clear(server, tmp_path, monkeypatch):
    monkeypatch.delenv('FAKE_JUDGE_KEY', raising=False)
    judge = make_judge(server, tmp_path, cache_dir=None)
    with pytest.raises(JudgeError, match='FAKE_JUDGE_KEY'):
        judge.match_phrases([('a dog', 'dog')])
    monkeypatch.setenv('FAKE_JUDGE_KEY', 'wrong-key')
    with pytest.raises(JudgeError, match='HTTP 401') as err:
        judge.match_phrases([('a dog', 'dog')])
    assert 'wrong-key' not in str(err.value)
    assert judge.num_requests == 1  # 401 is not retried
    monkeypatch.setenv('FAKE_JUDGE_KEY', KEY)
    stubborn = make_judge(server, tmp_path, cache_dir=None, max_retries=1)
    with pytest.raises(JudgeError, match='after 2 attempt'):
        stubborn.match_phrases([('FAIL500 x', 'dog')])


def test_reply_parsers():
    assert parse_score_pair('7, 9\nbecause') == (7.0, 9.0)
    assert all(math.isnan(v) for v in parse_score_pair('seven and nine'))
    assert parse_yes_no('**Yes**, it does') and not parse_yes_no('No.')


def test_embedding_judge_offline():
    judge = EmbeddingJudge(match_thr=0.5)
    assert judge.match_phrases([('a small dog', 'dog'), ('a red car', 'dog'),
                                ('', '')]) == [True, False, False]
    (ref, good), (_, bad) = judge.rate_answers([
        dict(reference='A man rides a horse.', answer='A man riding a horse.'),
        dict(reference='A man rides a horse.', answer='Stock prices fell.'),
    ])
    assert ref == 10.0 and good > 8.0 and bad < 3.0
