"""A tiny word-level tokenizer, built in-process for unit tests.

Real tokenizers (Vicuna's SentencePiece) are large and need a download; a
word-level ``tokenizers`` model with a few hundred words runs the same
``transformers`` code paths (``AutoTokenizer``, added special tokens, decode)
and keeps the tiny LM's embedding table small.
"""
from typing import Iterable, Optional

from mmgrounding.structures.markup import (GLAMM_SPECIAL_TOKENS,
                                           LLAVA_G_SPECIAL_TOKENS)

#: Special tokens of both models: GLaMM (+ our ``<image>`` placeholder) and
#: LLaVA-Grounding.
GLAMM_TOKENS = ('<image>', ) + tuple(t for t in GLAMM_SPECIAL_TOKENS
                                     if t != '<image>')
LLAVA_G_TOKENS = LLAVA_G_SPECIAL_TOKENS
MODEL_TOKENS = GLAMM_TOKENS + LLAVA_G_TOKENS

#: bos/eos/unk/pad, in the Llama order (unk 0, bos 1, eos 2) + pad 3.
BASE_SPECIAL_TOKENS = ('<unk>', '<s>', '</s>', '<pad>')

#: Words of the Vicuna v1 template, GLaMM prompts and the synthetic world.
DEFAULT_WORDS = tuple("""
a an the of and or to in on at is it its this that there are with for by from
as be can you me my your please could would give provide describe detailed
description image picture photo region marked overview provides respond
interleaved segmentation masks mask corresponding parts answer segment sure
what where which who how many chat between curious human artificial
intelligence assistant gives helpful polite answers questions question user
human's caption short briefly object objects shape shapes
circle square triangle red green blue yellow purple orange black white gray
small large big left right top bottom middle center above below next beside
near far first second third one two three four leftmost rightmost topmost
bottommost upper lower side corner background
. , : ; ? ! ' " ( ) - _ /
""".split())


def build_tiny_tokenizer(save_dir: str,
                         words: Optional[Iterable[str]] = None,
                         include_model_tokens: bool = True,
                         vocab_size: Optional[int] = None,
                         lowercase: bool = True,
                         spiece_underline: bool = False):
    """Build, save and return a tiny word-level fast tokenizer.

    Args:
        save_dir: directory written with ``save_pretrained`` (load it back
            with ``AutoTokenizer.from_pretrained(save_dir)``).
        words: vocabulary words (default :data:`DEFAULT_WORDS`).
        include_model_tokens: register the GLaMM and LLaVA-G special tokens
            (:data:`MODEL_TOKENS`) as added special tokens; False leaves them
            for the language model to add.
        vocab_size: pad the base vocabulary (words + bos/eos/unk/pad, not
            the model tokens) with filler words ``w0, w1, ...`` to exactly
            this size (e.g. 32000 for a Vicuna-sized vocabulary).
        lowercase: lowercase text before the lookup.
        spiece_underline: also hold SentencePiece's ``▁`` piece (after the
            words), which ``TokenizeConversation(tokenization='official')``
            needs for the lone dummy prefix of the released GLaMM stream.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` with bos ``<s>``, eos
        ``</s>``, unk ``<unk>``, pad ``<pad>``; a bos is prepended on encode.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = list(DEFAULT_WORDS if words is None else words)
    vocab = {}
    for word in list(BASE_SPECIAL_TOKENS) + words:
        if lowercase and word not in BASE_SPECIAL_TOKENS:
            word = word.lower()
        vocab.setdefault(word, len(vocab))
    if spiece_underline:
        vocab.setdefault('\u2581', len(vocab))
    if vocab_size is not None:
        if vocab_size < len(vocab):
            raise ValueError(f'vocab_size={vocab_size} is below the '
                             f'{len(vocab)} base words')
        filler = 0
        while len(vocab) < vocab_size:
            vocab.setdefault(f'w{filler}', len(vocab))
            filler += 1
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token='<unk>'))
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(),
         pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(
        single='<s> $A', pair='<s> $A $B', special_tokens=[('<s>', 1)])
    specials = list(BASE_SPECIAL_TOKENS)
    if include_model_tokens:
        specials += list(MODEL_TOKENS)
    tok.add_special_tokens(specials)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token='<s>',
        eos_token='</s>',
        unk_token='<unk>',
        pad_token='<pad>',
        padding_side='right')
    hf_tok.save_pretrained(save_dir)
    return hf_tok


__all__ = [
    'build_tiny_tokenizer', 'MODEL_TOKENS', 'GLAMM_TOKENS', 'LLAVA_G_TOKENS',
    'DEFAULT_WORDS'
]
