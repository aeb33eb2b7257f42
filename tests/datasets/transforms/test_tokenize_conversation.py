import copy
import pickle

import numpy as np
import pytest
import torch
from grounding_fixtures import build_bpe_tokenizer, make_record
from transformers import AutoTokenizer

from mmgrounding.datasets.transforms import (FormatGroundedConversation,
                                             LoadGroundingAnnotations,
                                             TokenizeConversation)
from mmgrounding.registry import TRANSFORMS
from mmgrounding.structures import GroundingDataError

N_IMG = 5


def _tokenize(tokenizer_path, style='glamm', **kwargs):
    tokens = dict(glamm=('[SEG]', '<bbox>'), llava_g=('<seg>', '<obj>'))
    return TokenizeConversation(
        tokenizer=dict(pretrained_model_name_or_path=tokenizer_path),
        num_image_tokens=N_IMG,
        grounding_token=tokens[style][0],
        region_token=tokens[style][1],
        **kwargs)


def _run(record, tokenizer_path, style='glamm', fmt_kwargs=None, **kwargs):
    results = LoadGroundingAnnotations()(record)
    results = FormatGroundedConversation(style=style,
                                         **(fmt_kwargs or {}))(results)
    return _tokenize(tokenizer_path, style, **kwargs)(results)


@pytest.mark.parametrize('style', ['glamm', 'llava_g'])
def test_labels_cover_exactly_the_answers(tokenizer_path, style):
    out = _run(make_record(two_rounds=True), tokenizer_path, style)
    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    ids, labels = out['input_ids'], out['labels']
    assert ids.dtype == labels.dtype == torch.long
    assert tok.unk_token_id not in ids.tolist()  # vocabulary is complete
    assert ids[0].item() == tok.bos_token_id
    assert (ids == tok.bos_token_id).sum() == 1
    supervised = labels != -100
    assert torch.equal(labels[supervised], ids[supervised])
    # The labelled tokens are exactly the answers with their </s>.
    expected = []
    for s, e in out['answer_spans']:
        expected += tok(out['text'][s:e], add_special_tokens=False).input_ids
    assert labels[supervised].tolist() == expected
    assert tok.decode(labels[supervised]).count('</s>') == 2
    # Image tokens: exactly N copies, never supervised.
    image_id = tok.convert_tokens_to_ids('<image>')
    image_pos = (ids == image_id).nonzero().flatten()
    assert len(image_pos) == N_IMG
    assert torch.equal(image_pos, image_pos[0] + torch.arange(N_IMG))
    raw = tok(out['text'], add_special_tokens=False).input_ids
    assert len(ids) == len(raw) + 1 + N_IMG - 1


def test_grounding_tokens_align_with_masks(tokenizer_path):
    record = make_record()
    out = _run(copy.deepcopy(record), tokenizer_path)
    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    seg_id = tok.convert_tokens_to_ids('[SEG]')
    index = out['grounding_token_index']
    assert index.tolist() == (out['input_ids'] == seg_id).nonzero().flatten(
    ).tolist()
    assert len(index) == 2
    # i-th [SEG] closes the i-th phrase: '</p>' right before it.
    close_id = tok.convert_tokens_to_ids('</p>')
    assert (out['input_ids'][index - 1] == close_id).all()
    masks = out['grounding_masks']
    assert masks.masks.shape == (2, 32, 40)
    gt = out['gt_masks'].masks
    np.testing.assert_array_equal(masks.masks[0], gt[0])
    np.testing.assert_array_equal(masks.masks[1], gt[1] | gt[2])
    assert out['grounding_instance_ids'] == [[0], [1, 2]]
    assert out['gt_phrases'] == ['A red circle', 'a blue square']


def test_predict_mode_targets_final_answer(tokenizer_path):
    out = _run(make_record(two_rounds=True), tokenizer_path,
               fmt_kwargs=dict(with_answer=False))
    assert out['text'].endswith('ASSISTANT:')
    assert len(out['grounding_token_index']) == 2  # in the prompt
    assert out['gt_phrases'] == ['A green triangle']
    assert len(out['grounding_masks']) == 1
    # Only the answered first round is supervised; the open turn is not.
    assert len(out['answer_spans']) == 1
    last_answer_end = (out['labels'] != -100).nonzero().max()
    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    assert out['input_ids'][last_answer_end].item() == tok.eos_token_id


def test_count_mismatches_raise_naming_the_sample(tokenizer_path):
    results = FormatGroundedConversation(style='glamm')(
        LoadGroundingAnnotations()(make_record()))
    results['grounding_spans'] = results['grounding_spans'][:1]
    results['grounding_phrase_ids'] = [0]
    with pytest.raises(GroundingDataError) as err:
        _tokenize(tokenizer_path)(results)
    msg = str(err.value)
    assert "source='unit'" in msg and 'img_id=7' in msg
    assert "field='phrases'" in msg and '2' in msg and '1' in msg

    # Two image tokens.
    results = FormatGroundedConversation(style='glamm')(make_record())
    results['text'] = results['text'].replace('Describe', '<image> Describe')
    with pytest.raises(GroundingDataError, match='2 .*<image>'):
        _tokenize(tokenizer_path)(results)

    # Regions without a region token.
    results = FormatGroundedConversation(style='glamm')(make_record())
    results['regions'] = [dict(instance_id=0, bbox=[2, 2, 10, 10])]
    with pytest.raises(GroundingDataError, match="field='regions'"):
        _tokenize(tokenizer_path)(results)

    # A phrase without instances.
    record = make_record()
    record['phrases'][1]['instance_ids'] = []
    with pytest.raises(GroundingDataError, match='phrase 1 has no instance'):
        _run(record, tokenizer_path)


def test_region_tokens(tokenizer_path):
    record = make_record(
        task='region_caption',
        conversations=[
            dict(role='user', text='<image>\nDescribe <bbox> .'),
            dict(role='assistant', text='A red circle.')
        ],
        phrases=[],
        regions=[dict(instance_id=0, bbox=[2, 2, 10, 10])])
    out = _run(record, tokenizer_path)
    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    assert out['input_ids'][out['region_token_index']].tolist() == [
        tok.convert_tokens_to_ids('<bbox>')
    ]
    assert len(out['grounding_masks']) == 0
    assert out['grounding_masks'].masks.shape == (0, 32, 40)


def test_truncation_drops_whole_rounds(tokenizer_path):
    full = _run(make_record(two_rounds=True), tokenizer_path)
    first_round_end = full['round_spans'][0][2]
    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    first_len = 1 + len(
        tok(full['text'][:first_round_end],
            add_special_tokens=False).input_ids) + N_IMG - 1
    assert first_len < len(full['input_ids'])

    out = _run(make_record(two_rounds=True), tokenizer_path,
               max_length=first_len + 3)
    assert len(out['input_ids']) == first_len
    assert out['text'] == full['text'][:first_round_end]
    assert out['text'].endswith('[SEG].</s>')
    assert out['gt_phrases'] == ['A red circle', 'a blue square']
    assert len(out['grounding_masks']) == len(out['grounding_token_index'])
    assert out['prompt'].endswith('Describe the image. ASSISTANT:')
    assert out['input_ids'][-1].item() == tok.eos_token_id
    assert out['labels'][-1].item() == tok.eos_token_id

    with pytest.raises(GroundingDataError, match='first round'):
        _run(make_record(two_rounds=True), tokenizer_path,
             max_length=first_len - 1)
    with pytest.raises(GroundingDataError, match='max_length'):
        _run(make_record(two_rounds=True), tokenizer_path,
             max_length=first_len + 3, truncation='error')
    with pytest.raises(GroundingDataError, match='max_length'):
        _run(make_record(two_rounds=True), tokenizer_path,
             fmt_kwargs=dict(with_answer=False), max_length=10)


def test_picklable_and_registry_built(tokenizer_path):
    transform = TRANSFORMS.build(
        dict(type='TokenizeConversation',
             tokenizer=dict(pretrained_model_name_or_path=tokenizer_path),
             num_image_tokens=N_IMG))
    results = FormatGroundedConversation(style='glamm')(
        LoadGroundingAnnotations()(make_record()))
    first = transform(copy.deepcopy(results))
    clone = pickle.loads(pickle.dumps(transform))
    assert clone._tokenizer is None
    second = clone(copy.deepcopy(results))
    assert torch.equal(first['input_ids'], second['input_ids'])


def test_missing_token_is_reported(tokenizer_path):
    transform = TokenizeConversation(
        tokenizer=dict(pretrained_model_name_or_path=tokenizer_path),
        num_image_tokens=2, grounding_token='<nope>')
    results = FormatGroundedConversation(style='glamm')(make_record())
    with pytest.raises(ValueError, match='<nope>'):
        transform(results)


@pytest.mark.parametrize('style', ['glamm', 'llava_g'])
def test_labels_with_metaspace_bpe_offsets(tmp_path, style):
    path = build_bpe_tokenizer(str(tmp_path / 'bpe'))
    out = _run(make_record(two_rounds=True), path, style)
    tok = AutoTokenizer.from_pretrained(path)
    labelled = out['labels'][out['labels'] != -100]
    pieces = ''.join(tok.convert_ids_to_tokens(labelled.tolist()))
    answers = ''.join(out['text'][s:e] for s, e in out['answer_spans'])
    assert pieces.replace('\u2581', '') == answers.replace(' ', '')
    seg = tok.convert_tokens_to_ids('[SEG]' if style == 'glamm' else '<seg>')
    assert (out['input_ids'][out['grounding_token_index']] == seg).all()
    assert len(out['grounding_token_index']) == 3
