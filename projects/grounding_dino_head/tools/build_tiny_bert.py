"""Build and save a tiny BERT (random weights) + word-level tokenizer.

GroundingDINO's language model is BERT (``bert-base-uncased``), loaded by
name with ``from_pretrained``; nothing may be downloaded here, so the tiny
GroundingDINO config points at a local directory that this tool writes:
a ``BertConfig`` with a few small layers and a ``BertTokenizer`` (fast,
``tokenizers`` backed: ``char_to_token`` works) whose WordPiece vocabulary
is whole words only: BERT's special tokens, the words of the synthetic
world and of the prompts (``mmgrounding.testing.tokenizer.DEFAULT_WORDS``)
and, with ``--data-root``, every word of its referring expressions.
GroundingDINO splits sub-sentences at ``[CLS] [SEP] . ?``, which are all in
the vocabulary.

    python projects/grounding_dino_head/tools/build_tiny_bert.py \
        work_dirs/grounding_dino_head/tiny_bert --data-root data/synthetic
"""
import argparse
import os
import os.path as osp
import pickle
from typing import Iterable, List, Optional

import torch

from mmgrounding.testing.tokenizer import DEFAULT_WORDS

#: BERT's special tokens, in bert-base-uncased's relative order.
BERT_SPECIAL = ('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]')


def expression_words(data_root: str) -> List[str]:
    """Lower-cased words of every referring expression of the world."""
    with open(osp.join(data_root, 'annotations', 'refs(unc).p'), 'rb') as f:
        refs = pickle.load(f)
    words = []
    for ref in refs:
        for sent in ref['sentences']:
            words.extend(sent['sent'].lower().replace(',', ' , ').split())
    return words


def build_tiny_bert(save_dir: str,
                    words: Optional[Iterable[str]] = None,
                    hidden_size: int = 64,
                    num_layers: int = 1,
                    num_heads: int = 2,
                    seed: int = 0) -> str:
    """Write ``config.json``, weights and tokenizer files to ``save_dir``.

    Args:
        save_dir: output directory (``from_pretrained(save_dir)`` reads it).
        words: extra vocabulary words (``DEFAULT_WORDS`` always included).
        hidden_size, num_layers, num_heads: the BERT size (intermediate
            size is 2 x hidden).
        seed: torch seed of the random init.

    Returns:
        ``save_dir``.
    """
    from transformers import BertConfig, BertModel, BertTokenizer
    vocab = list(BERT_SPECIAL)
    for w in list(DEFAULT_WORDS) + list(words or []):
        w = w.lower()
        if w not in vocab:
            vocab.append(w)
    os.makedirs(save_dir, exist_ok=True)
    tokenizer = BertTokenizer(
        vocab={w: i
               for i, w in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(save_dir)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=128)
    torch.manual_seed(seed)
    BertModel(config, add_pooling_layer=False).save_pretrained(save_dir)
    return save_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('save_dir')
    parser.add_argument('--data-root', help='add the words of its refs')
    parser.add_argument('--hidden-size', type=int, default=64)
    parser.add_argument('--num-layers', type=int, default=1)
    args = parser.parse_args()
    words = expression_words(args.data_root) if args.data_root else None
    print(build_tiny_bert(args.save_dir, words, args.hidden_size,
                          args.num_layers))


if __name__ == '__main__':
    main()
