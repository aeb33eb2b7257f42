import copy

import pytest
from grounding_fixtures import make_record

from mmgrounding.datasets.transforms import FormatGroundedConversation
from mmgrounding.registry import TRANSFORMS
from mmgrounding.structures import GroundingDataError

GLAMM_SYSTEM = ('A chat between a curious human and an artificial '
                'intelligence assistant. The assistant gives helpful, '
                "detailed, and polite answers to the human's questions.")
LLAVA_SYSTEM = ('A chat between a curious user and an artificial '
                'intelligence assistant. The assistant gives helpful, '
                "detailed, and polite answers to the user's questions.")
GLAMM_PREFIX = ('The <im_start><image><im_end> provides an overview of the '
                'picture.\n')


def test_glamm_gcg_exact_text(record):
    out = FormatGroundedConversation(style='glamm')(record)
    answer = ('<p> A red circle </p> [SEG] next to <p> a blue square </p> '
              '[SEG].</s>')
    prompt = (f'{GLAMM_SYSTEM} USER: {GLAMM_PREFIX}Describe the image. '
              'ASSISTANT:')
    assert out['text'] == prompt + ' ' + answer
    assert out['prompt'] == prompt
    assert [out['text'][s:e] for s, e in out['answer_spans']] == [answer]
    assert [out['text'][s:e] for s, e in out['grounding_spans']] == [
        '[SEG]', '[SEG]'
    ]
    assert out['grounding_phrase_ids'] == out['target_phrase_ids'] == [0, 1]


def test_llava_g_exact_text(record):
    out = FormatGroundedConversation(style='llava_g')(record)
    assert out['text'] == (
        f'{LLAVA_SYSTEM} USER: <image>\nDescribe the image. ASSISTANT: '
        '<g_s> A red circle <g_e> <seg> next to <g_s> a blue square <g_e> '
        '<seg>.</s>')
    assert [out['text'][s:e] for s, e in out['grounding_spans']] == [
        '<seg>', '<seg>'
    ]


def test_llava_g_grounding_suffix(record):
    out = FormatGroundedConversation(
        style='llava_g', task_templates='default')(record)
    assert 'USER: <image>\nDescribe the image.\n(with grounding) ' \
           'ASSISTANT: <g_s>' in out['text']


def test_glamm_gcg_template_instruction(record):
    out = FormatGroundedConversation(
        style='glamm', task_templates='default')(record)
    assert out['prompt'].endswith(
        f'USER: {GLAMM_PREFIX}Could you please give me a detailed '
        'description of the image? Please respond with interleaved '
        'segmentation masks for the corresponding parts of the answer. '
        'ASSISTANT:')


def _refseg_record():
    return make_record(
        task='refseg',
        conversations=[
            dict(role='user', text='<image>\nPlease segment the red circle.'),
            dict(role='assistant', text='Sure, the red circle.'),
            dict(role='user', text='Please segment the blue square.'),
            dict(role='assistant', text='Sure, the blue square.'),
        ],
        phrases=[
            dict(turn=1, start=6, end=20, instance_ids=[0]),
            dict(turn=3, start=6, end=21, instance_ids=[1, 2]),
        ])


def test_glamm_refseg_bare_token():
    out = FormatGroundedConversation(style='glamm')(_refseg_record())
    assert out['text'].endswith(
        'ASSISTANT: Sure, [SEG].</s>USER: Please segment the blue square. '
        'ASSISTANT: Sure, [SEG].</s>')
    assert [p['text'] for p in out['phrases']] == [
        'the red circle', 'the blue square'
    ]


def test_fill_phrase_drops_a_doubled_article():
    from mmgrounding.datasets.transforms.conversation import fill_phrase
    q = 'Can you segment the {phrase} in this image?'
    assert fill_phrase(q, 'the red circle') == \
        'Can you segment the red circle in this image?'
    assert fill_phrase(q, 'a dog') == 'Can you segment a dog in this image?'
    assert fill_phrase(q, 'man on left') == \
        'Can you segment the man on left in this image?'
    assert fill_phrase(q, 'theatre seat') == \
        'Can you segment the theatre seat in this image?'
    assert fill_phrase('Please segment {phrase} in this image.',
                       'the cat') == 'Please segment the cat in this image.'


def test_glamm_refseg_templates_first_and_seeded():
    fmt = FormatGroundedConversation(style='glamm', task_templates='default')
    out = fmt(_refseg_record())
    assert out['text'] == (
        f'{GLAMM_SYSTEM} USER: {GLAMM_PREFIX}Can you segment the red '
        'circle in this image? ASSISTANT: It is [SEG].</s>USER: Can you '
        'segment the blue square in this image? ASSISTANT: It is '
        '[SEG].</s>')
    assert [(p['turn'], p['text']) for p in out['phrases']] == [
        (1, 'the red circle'), (3, 'the blue square')
    ]

    rnd = FormatGroundedConversation(
        style='glamm', task_templates='default', random_template=True,
        seed=5)
    texts = {}
    for idx in range(12):
        rec = _refseg_record()
        rec['sample_idx'] = idx
        texts[idx] = rnd(copy.deepcopy(rec))['text']
        again = rnd(copy.deepcopy(rec))['text']
        assert again == texts[idx]  # deterministic per sample
        assert texts[idx].count('[SEG]') == 2
    assert len(set(texts.values())) > 1  # but varies across samples


def test_predict_mode(record):
    two = make_record(two_rounds=True)
    out = FormatGroundedConversation(style='glamm', with_answer=False)(two)
    assert out['text'] == out['prompt']
    assert out['text'].endswith('USER: What is left of it? ASSISTANT:')
    # first answer stays in the prompt, the final answer's phrase is target
    assert out['grounding_phrase_ids'] == [0, 1]
    assert out['target_phrase_ids'] == [2]
    assert len(out['answer_spans']) == 1


def test_region_placeholders_converted():
    rec = make_record(
        task='region_caption',
        conversations=[
            dict(role='user', text='<image>\nDescribe <obj> please.'),
            dict(role='assistant', text='A red circle.'),
        ],
        phrases=[],
        regions=[dict(instance_id=0, bbox=[2, 2, 10, 10])])
    out = FormatGroundedConversation(style='glamm')(copy.deepcopy(rec))
    assert 'Describe <bbox> please. ASSISTANT: A red circle.</s>' in \
        out['text']
    out = FormatGroundedConversation(
        style='glamm', task_templates='default')(copy.deepcopy(rec))
    assert out['prompt'].endswith(
        'Can you provide me with a detailed description of the region in '
        'the picture marked by <bbox>? ASSISTANT:')
    out = FormatGroundedConversation(style='llava_g')(copy.deepcopy(rec))
    assert 'Describe <obj> please.' in out['text']
    rec['regions'] = []
    with pytest.raises(GroundingDataError, match='regions'):
        FormatGroundedConversation(style='glamm')(rec)


@pytest.mark.parametrize('mutate, field', [
    (lambda r: r['phrases'].reverse(), 'phrases'),
    (lambda r: r['phrases'][0].update(text='A blue circle'), 'phrases'),
    (lambda r: r['phrases'][0].update(turn=0), 'phrases'),
    (lambda r: r['conversations'].reverse(), 'conversations'),
    (lambda r: r['conversations'][1].update(
        text='A red circle next to a blue square. [SEG]'), 'conversations'),
    (lambda r: r['conversations'][0].update(text='<image> <image> hi'),
     'conversations'),
])
def test_bad_records_raise_with_sample_name(record, mutate, field):
    mutate(record)
    with pytest.raises(GroundingDataError) as err:
        FormatGroundedConversation(style='glamm')(record)
    assert "img_id=7" in str(err.value) and "source='unit'" in str(err.value)
    assert err.value.field == field


def test_built_from_registry():
    fmt = TRANSFORMS.build(dict(type='FormatGroundedConversation',
                                style='llava_g'))
    assert isinstance(fmt, FormatGroundedConversation)
    with pytest.raises(ValueError):
        FormatGroundedConversation(style='other')


def test_llava_g_grounding_request_not_doubled(record):
    """A question that already asks '(with grounding)' (the GVC files do,
    after a space) gets no second request."""
    record = copy.deepcopy(record)
    record['conversations'][0]['text'] = \
        '<image>\nDescribe the image. (with grounding)'
    out = FormatGroundedConversation(
        style='llava_g', task_templates='default')(record)
    assert out['text'].count('(with grounding)') == 1
    assert 'USER: <image>\nDescribe the image. (with grounding) ' \
           'ASSISTANT: <g_s>' in out['text']
