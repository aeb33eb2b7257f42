"""``TokenizeConversation(tokenization='official')``: the id stream of the
released GLaMM checkpoints (official_releases.md §1.6), checked against a
token list written out by hand from the official rules.

No SentencePiece model can be built offline here (``sentencepiece`` is not
installed), so the test tokenizer is the smallest faithful stand-in: a
``tokenizers`` Unigram model with Llama's ``tokenizer.json`` normaliser
(prepend ``▁``, spaces to ``▁``): encoding a piece of text gives exactly the
SentencePiece pieces of that text, dummy prefix included. Its vocabulary is
the list below (id = position), so the expected ids are the hand-written
pieces looked up in that list; the official Vicuna ids differ only in number
(``▁`` is 29871 there, 3 here).
"""
import numpy as np
import pytest
from grounding_fixtures import make_record

from mmgrounding.datasets.transforms import (FormatGroundedConversation,
                                             LoadGroundingAnnotations,
                                             TokenizeConversation)

U = '\u2581'
PIECES = [
    '<unk>', '<s>', '</s>', U, U + 'A', U + 'chat', U + 'between', U + 'a',
    U + 'curious', U + 'human', U + 'and', U + 'an', U + 'artificial',
    U + 'intelligence', U + 'assistant', '.', U + '.', U + 'The',
    U + 'gives', U + 'helpful', ',', U + 'detailed', U + 'polite',
    U + 'answers', U + 'to', U + 'the', "'s", U + 'questions', U + 'USER',
    ':', U + 'provides', U + 'overview', U + 'of', U + 'picture', '\n',
    'Could', U + 'you', U + 'please', U + 'give', U + 'me',
    U + 'description', U + 'image', '?', U + 'Please', U + 'respond',
    U + 'with', U + 'interleaved', U + 'segmentation', U + 'masks',
    U + 'for', U + 'corresponding', U + 'parts', U + 'answer',
    U + 'ASSISTANT', U + 'red', U + 'circle', U + 'next', U + 'blue',
    U + 'square'
]
# added as GLaMM adds them (train.py:136-148), then our <image> placeholder
ADDED = ['<im_start>', '<im_end>', '<bbox>', '<point>', '[SEG]', '<p>',
         '</p>', '<image>']
VOCAB = PIECES + ADDED
N_IMG = 3


def build_spiece_tokenizer(path):
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast
    backend = Tokenizer(models.Unigram([(p, -1.0) for p in PIECES], unk_id=0))
    backend.normalizer = normalizers.Sequence(
        [normalizers.Prepend(U), normalizers.Replace(' ', U)])
    backend.decoder = decoders.Sequence(
        [decoders.Replace(U, ' '), decoders.Strip(' ', 1, 0)])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token='<s>',
                                  eos_token='</s>', unk_token='<unk>')
    tok.add_tokens(ADDED, special_tokens=True)
    assert [tok.convert_tokens_to_ids(t) for t in ADDED] == list(
        range(len(PIECES), len(VOCAB)))
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope='module')
def spiece_path(tmp_path_factory):
    return build_spiece_tokenizer(str(tmp_path_factory.mktemp('spiece')))


def gcg_sample(path, tokenization='official'):
    results = LoadGroundingAnnotations()(make_record())
    results = FormatGroundedConversation(
        style='glamm', task_templates='default')(results)
    return TokenizeConversation(
        tokenizer=dict(pretrained_model_name_or_path=path),
        num_image_tokens=N_IMG, tokenization=tokenization)(results)


# The GCG prompt + answer of make_record(), tokenised by hand with the
# official rules: split at <image>; BOS once; whitespace next to GLaMM's
# added tokens stripped; every text piece with its dummy prefix ▁; the lone
# ▁ opening the chunk that starts with <im_end>; </s> kept as is.
PROMPT = [
    '<s>', U + 'A', U + 'chat', U + 'between', U + 'a', U + 'curious',
    U + 'human', U + 'and', U + 'an', U + 'artificial', U + 'intelligence',
    U + 'assistant', '.', U + 'The', U + 'assistant', U + 'gives',
    U + 'helpful', ',', U + 'detailed', ',', U + 'and', U + 'polite',
    U + 'answers', U + 'to', U + 'the', U + 'human', "'s", U + 'questions',
    '.', U + 'USER', ':', U + 'The', '<im_start>'
] + ['<image>'] * N_IMG + [
    U, '<im_end>', U + 'provides', U + 'an', U + 'overview', U + 'of',
    U + 'the', U + 'picture', '.', '\n', 'Could', U + 'you', U + 'please',
    U + 'give', U + 'me', U + 'a', U + 'detailed', U + 'description',
    U + 'of', U + 'the', U + 'image', '?', U + 'Please', U + 'respond',
    U + 'with', U + 'interleaved', U + 'segmentation', U + 'masks',
    U + 'for', U + 'the', U + 'corresponding', U + 'parts', U + 'of',
    U + 'the', U + 'answer', '.', U + 'ASSISTANT', ':'
]
ANSWER = [
    '<p>', U + 'A', U + 'red', U + 'circle', '</p>', '[SEG]', U + 'next',
    U + 'to', '<p>', U + 'a', U + 'blue', U + 'square', '</p>', '[SEG]',
    U + '.', '</s>'
]


def test_official_ids_of_a_gcg_prompt(spiece_path):
    out = gcg_sample(spiece_path)
    want = [VOCAB.index(t) for t in PROMPT + ANSWER]
    assert out['input_ids'].tolist() == want
    # labels: the answer and its </s>, aligned with the ids; -100 elsewhere
    labels = out['labels'].tolist()
    assert labels == [-100] * len(PROMPT) + want[len(PROMPT):]
    seg = VOCAB.index('[SEG]')
    assert out['grounding_token_index'].tolist() == [
        len(PROMPT) + 5, len(PROMPT) + 13]
    assert all(out['input_ids'][i] == seg
               for i in out['grounding_token_index'])
    # the stray ▁ (Vicuna 29871) sits between the image tokens and <im_end>
    stray = PROMPT.index('<im_end>') - 1
    assert out['input_ids'][stray - 1] == VOCAB.index('<image>')
    assert out['input_ids'][stray] == VOCAB.index(U)


def test_single_call_differs_from_the_release(spiece_path):
    """The default one-call encoding has no lone ▁ after the image and keeps
    the spaces around <p> / </p> as ▁ pieces: not the released stream."""
    official = gcg_sample(spiece_path)['input_ids'].tolist()
    single = gcg_sample(spiece_path, 'single_call')['input_ids'].tolist()
    assert single != official
    ids = np.asarray(single)
    image = VOCAB.index('<image>')
    after = ids[np.flatnonzero(ids == image)[-1] + 1]
    assert after == VOCAB.index('<im_end>')


def test_official_needs_the_spiece_piece(tokenizer_path):
    with pytest.raises(ValueError, match='SentencePiece'):
        gcg_sample(tokenizer_path)
    with pytest.raises(ValueError, match='tokenization'):
        TokenizeConversation(
            tokenizer=dict(pretrained_model_name_or_path=tokenizer_path),
            num_image_tokens=1, tokenization='slow')


def test_configs_loading_releases_tokenize_officially():
    """Every GLaMM-7B config that starts from a converted release tokenises
    as the release (train and test pipelines)."""
    import glob
    import os.path as osp

    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    paths = sorted(glob.glob(osp.join(root, 'configs', 'glamm',
                                      'glamm_vicuna7b_*.py')))
    assert len(paths) >= 4
    for path in paths:
        cfg = Config.fromfile(path)
        assert cfg.get('load_from'), path
        found = []

        def walk(node):
            if isinstance(node, dict):
                if node.get('type') == 'TokenizeConversation':
                    found.append(node.get('tokenization', 'single_call'))
                for v in node.values():
                    walk(v)
            elif isinstance(node, (list, tuple)):
                for v in node:
                    walk(v)

        walk(cfg.to_dict())
        assert found and set(found) == {'official'}, (path, found)
