"""A tiny byte-level BPE tokenizer for the synthetic world, built locally.

Trained with the ``tokenizers`` library on a fixed enumeration of the world's
language and the GLaMM / LLaVA-Grounding templates, so every world word is one
token, while any other text still encodes through the 256 byte symbols. The
special tokens of both models are registered as special added tokens; a
sequence starts with ``<s>`` (Llama convention) and never gets ``</s>``
automatically.
"""
import os
from typing import List, Optional

from mmgrounding.structures.markup import (GLAMM_SPECIAL_TOKENS,
                                           LLAVA_G_SPECIAL_TOKENS)
from .language import vocabulary_corpus

BOS, EOS, UNK, PAD = '<s>', '</s>', '<unk>', '<pad>'
# Order fixes the ids: <unk>=0, <s>=1, </s>=2 as in Llama, then the rest.
SPECIAL_TOKENS: List[str] = [
    UNK, BOS, EOS, PAD, '<image>',
    *(t for t in GLAMM_SPECIAL_TOKENS if t != '<image>'),
    *LLAVA_G_SPECIAL_TOKENS
]
DEFAULT_VOCAB_SIZE = 1536


def train_tokenizer(corpus: Optional[List[str]] = None,
                    vocab_size: int = DEFAULT_VOCAB_SIZE):
    """Train the byte-level BPE ``tokenizers.Tokenizer`` (deterministic)."""
    from tokenizers import (Tokenizer, decoders, models, pre_tokenizers,
                            processors, trainers)
    corpus = vocabulary_corpus() if corpus is None else corpus
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                 use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f'{BOS} $A', pair=f'{BOS} $A {BOS} $B',
        special_tokens=[(BOS, bos_id)])
    return tok


def build_tokenizer(out_dir: str, vocab_size: int = DEFAULT_VOCAB_SIZE):
    """Train and save an HF tokenizer directory; returns the fast tokenizer.

    Load it later with ``transformers.AutoTokenizer.from_pretrained(out_dir)``.
    """
    from transformers import PreTrainedTokenizerFast
    tok = train_tokenizer(vocab_size=vocab_size)
    extra = [t for t in SPECIAL_TOKENS if t not in (BOS, EOS, UNK, PAD)]
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        pad_token=PAD, additional_special_tokens=extra,
        clean_up_tokenization_spaces=False, model_max_length=2048,
        padding_side='right')
    os.makedirs(out_dir, exist_ok=True)
    hf_tok.save_pretrained(out_dir)
    return hf_tok
