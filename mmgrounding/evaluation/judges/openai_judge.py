"""GPT judge over any OpenAI-compatible ``/v1/chat/completions`` endpoint."""
import hashlib
import json
import os
import os.path as osp
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log

from mmgrounding.registry import TASK_UTILS
from .base import BaseJudge, PhrasePair, parse_score_pair, parse_yes_no

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

MATCH_SYSTEM = ('You compare object references in image descriptions. '
                'Reply with one word: yes or no.')
MATCH_TEMPLATE = (
    'A model described an image and tied the phrase "{pred}" to a box. '
    'The annotated object in that box is: "{gt}".\n'
    'Does the phrase correctly refer to this object? Answer yes or no.')
RATE_SYSTEM = ('You are a careful, impartial grader of answers about '
               'images.')
RATE_TEMPLATE = (
    '[Image context]\n{context}\n\n[Question]\n{question}\n\n'
    '[Answer A]\n{reference}\n[End of Answer A]\n\n'
    '[Answer B]\n{answer}\n[End of Answer B]\n\n'
    '[Task]\nUsing only the image context, grade how helpful, relevant, '
    'accurate and detailed each answer is, from 1 (worst) to 10 (best). '
    'Write the two grades, A first, separated by a space, alone on the '
    'first line; then justify them briefly and impartially, without '
    'letting answer order or length sway you.')


class JudgeError(RuntimeError):
    """The judge endpoint failed for good (after retries, or a 4xx)."""


@TASK_UTILS.register_module()
class OpenAIJudge(BaseJudge):
    """LLM judge through an OpenAI-compatible chat-completions HTTP API.

    Requests go through ``urllib`` (no extra dependency). The API key is read
    from the environment variable named ``api_key_env`` at request time; it
    is never stored on the object, logged, or part of the cache key, and
    error texts are scrubbed of it.

    Robustness: a per-request ``timeout``; up to ``max_retries`` retries of
    timeouts, connection errors and HTTP 408/409/425/429/5xx with
    exponential backoff ``backoff * 2**attempt`` (capped at ``max_backoff``);
    other HTTP errors fail at once. ``max_workers`` requests run
    concurrently. Replies are cached on disk in ``cache_dir`` under the
    SHA-256 of the request (base URL, model, messages, sampling settings),
    so rerunning an evaluation costs nothing. ``cache_dir=None`` disables
    the cache.

    Args:
        model: model name sent in the request.
        base_url: API root up to and including ``/v1``.
        api_key_env: name of the env var holding the key ('' = no key).
        timeout: seconds per HTTP request.
        max_retries: retries after the first attempt.
        backoff: first retry delay in seconds.
        max_backoff: cap of the retry delay.
        max_workers: concurrent requests.
        temperature: sampling temperature (0.2 as LLaVA-Bench's reviewer).
        max_tokens: reply length limit.
        cache_dir: reply cache folder, or None.
    """

    def __init__(self,
                 model: str = 'gpt-4',
                 base_url: str = 'https://api.openai.com/v1',
                 api_key_env: str = 'OPENAI_API_KEY',
                 timeout: float = 60.0,
                 max_retries: int = 5,
                 backoff: float = 1.0,
                 max_backoff: float = 30.0,
                 max_workers: int = 4,
                 temperature: float = 0.2,
                 max_tokens: int = 512,
                 cache_dir: Optional[str] = '~/.cache/mmgrounding/judge'
                 ) -> None:
        if max_workers < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError('OpenAIJudge: max_workers >= 1, max_retries >= '
                             '0 and timeout > 0 are required')
        self.model = model
        self.base_url = base_url.rstrip('/')
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_workers = max_workers
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.cache_dir = osp.expanduser(cache_dir) if cache_dir else None
        self.name = f'openai:{model}'
        self.num_requests = 0  # HTTP requests sent (retries included)
        self.num_cache_hits = 0
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return (f'OpenAIJudge(model={self.model!r}, base_url='
                f'{self.base_url!r}, api_key_env={self.api_key_env!r})')

    # ------------------------------------------------------------ HTTP --- #
    def _api_key(self) -> Optional[str]:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise JudgeError(f'OpenAIJudge: the environment variable '
                             f'{self.api_key_env} (API key) is not set')
        return key

    def _scrub(self, text: str) -> str:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return text.replace(key, '***') if key else text

    def _payload(self, messages: Sequence[Dict[str, str]]) -> Dict:
        return dict(
            model=self.model,
            messages=list(messages),
            temperature=self.temperature,
            max_tokens=self.max_tokens)

    def _cache_path(self, payload: Dict) -> Optional[str]:
        if not self.cache_dir:
            return None
        blob = json.dumps(
            dict(base_url=self.base_url, **payload),
            sort_keys=True,
            ensure_ascii=False)
        digest = hashlib.sha256(blob.encode('utf-8')).hexdigest()
        return osp.join(self.cache_dir, digest[:2], digest + '.json')

    def _post(self, payload: Dict, key: Optional[str]) -> str:
        headers = {'Content-Type': 'application/json'}
        if key:
            headers['Authorization'] = f'Bearer {key}'
        request = urllib.request.Request(
            self.base_url + '/chat/completions',
            data=json.dumps(payload).encode('utf-8'),
            headers=headers,
            method='POST')
        with self._count_lock:
            self.num_requests += 1
        with urllib.request.urlopen(request, timeout=self.timeout) as resp:
            body = json.loads(resp.read().decode('utf-8'))
        try:
            return str(body['choices'][0]['message']['content'])
        except (KeyError, IndexError, TypeError) as err:
            raise JudgeError('OpenAIJudge: malformed reply without '
                             'choices[0].message.content') from err

    def complete(self, messages: Sequence[Dict[str, str]]) -> str:
        """One chat completion (cached, retried)."""
        payload = self._payload(messages)
        path = self._cache_path(payload)
        if path and osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                content = json.load(f)['content']
            with self._count_lock:
                self.num_cache_hits += 1
            return content
        key = self._api_key()
        for attempt in range(self.max_retries + 1):
            try:
                content = self._post(payload, key)
                break
            except urllib.error.HTTPError as err:
                retry = err.code in RETRY_STATUS
                reason = f'HTTP {err.code}'
            except (urllib.error.URLError, socket.timeout, TimeoutError,
                    ConnectionError, json.JSONDecodeError) as err:
                retry = True
                reason = type(err).__name__ + ': ' + self._scrub(str(err))
            if not retry or attempt == self.max_retries:
                raise JudgeError(
                    f'OpenAIJudge: request to {self.base_url} failed after '
                    f'{attempt + 1} attempt(s): {reason}')
            delay = min(self.backoff * 2**attempt, self.max_backoff)
            print_log(
                f'OpenAIJudge: {reason}; retry {attempt + 1}/'
                f'{self.max_retries} in {delay:.2f}s',
                logger='current',
                level=30)
            time.sleep(delay)
        if path:
            os.makedirs(osp.dirname(path), exist_ok=True)
            tmp = f'{path}.{os.getpid()}.tmp'
            with open(tmp, 'w', encoding='utf-8') as f:
                json.dump(dict(request=payload, content=content), f)
            os.replace(tmp, path)
        return content

    def complete_many(self,
                      conversations: Sequence[Sequence[Dict[str, str]]]
                      ) -> List[str]:
        """Many completions with at most ``max_workers`` in flight; order
        kept."""
        if not conversations:
            return []
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            return list(pool.map(self.complete, conversations))

    # ---------------------------------------------------------- judge --- #
    def match_phrases(self, pairs: Sequence[PhrasePair]) -> List[bool]:
        """Ask yes/no per (predicted phrase, GT label) pair."""
        convs = [[
            dict(role='system', content=MATCH_SYSTEM),
            dict(
                role='user',
                content=MATCH_TEMPLATE.format(pred=pred, gt=gt))
        ] for pred, gt in pairs]
        return [parse_yes_no(r) for r in self.complete_many(convs)]

    def rate_answers(self,
                     items: Sequence[Dict[str, str]]) -> List[Tuple[float,
                                                                  float]]:
        """LLaVA-Bench style pair of 1-10 grades (reference, answer)."""
        convs = [[
            dict(role='system', content=RATE_SYSTEM),
            dict(role='user', content=RATE_TEMPLATE.format(**it))
        ] for it in items]
        return [parse_score_pair(r) for r in self.complete_many(convs)]
