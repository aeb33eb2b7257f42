"""Shared by the demo tests: paths and the rewired tiny GLaMM.

The checkpoint holds random weights with one change (as in
tests/apis/test_inferencer.py): four tokens get large orthogonal input
embeddings d_k and the LM head maps d_k to the next token of the cycle
``<p> a </p> [SEG]`` (all other head rows zero), so greedy answers read
``<p> a </p> [SEG] <p> a ...``: generated phrases, [SEG] tokens and masks go
through the whole demo path in seconds, without training.
"""
from pathlib import Path

import torch


ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / ('configs/glamm/'
              'glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py')
IMG1 = 'data/synthetic/images/000000000001.png'
MAX_NEW = 6


def rewire_to_cycle(model) -> None:
    """Make ``model`` (GLaMM) answer ``<p> a </p> [SEG]`` cyclically."""
    tok = model.tokenizer
    ids = [tok(t, add_special_tokens=False).input_ids[0]
           for t in ('<p>', 'a', '</p>', '[SEG]')]
    lm = model.language_model.model
    with torch.no_grad():
        head = lm.get_output_embeddings()
        emb = lm.get_input_embeddings()
        dirs = torch.linalg.qr(torch.randn(head.weight.shape[1], 4))[0].T
        head.weight.zero_()
        for k, tok_id in enumerate(ids):
            emb.weight[tok_id] = 4 * dirs[k]
            head.weight[ids[(k + 1) % 4]] = 4 * dirs[k]
