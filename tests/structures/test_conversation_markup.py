import pytest

from mmgrounding.structures import (CONV_TEMPLATES, GroundingDataError,
                                    MarkupError, clean_official_caption,
                                    insert_markup, parse_answer, parse_markup,
                                    render_conversation, strip_markup)


def test_render_vicuna_v1_offsets():
    tpl = CONV_TEMPLATES['vicuna_v1']
    out = render_conversation(['hi', 'hello', 'more?', 'yes'], tpl,
                              system='SYS')
    assert out.text == ('SYS USER: hi ASSISTANT: hello</s>'
                        'USER: more? ASSISTANT: yes</s>')
    assert [out.text[s:s + 2] for s in out.message_starts] == [
        'hi', 'he', 'mo', 'ye'
    ]
    first, second = out.rounds
    assert out.text[slice(*first.answer)] == 'hello</s>'
    assert out.text[slice(*second.answer)] == 'yes</s>'
    assert out.text[:first.prompt_end].endswith('USER: hi ASSISTANT:')
    assert out.text[first.start:first.end] == 'USER: hi ASSISTANT: hello</s>'
    assert second.end == len(out.text)


def test_render_open_answer():
    tpl = CONV_TEMPLATES['llava_v1']
    out = render_conversation(['q', None], tpl)
    assert out.text == tpl.system + ' USER: q ASSISTANT:'
    assert out.rounds[0].answer is None
    assert out.rounds[0].prompt_end == len(out.text)
    with pytest.raises(ValueError):
        render_conversation(['q'], tpl)


def test_insert_and_parse_markup_roundtrip():
    text = 'A red circle next to a blue square.'
    spans = [(0, 12), (21, 34)]
    out = insert_markup(text, spans, '<p> {phrase} </p> [SEG]', '[SEG]')
    assert out.text == ('<p> A red circle </p> [SEG] next to '
                        '<p> a blue square </p> [SEG].')
    assert [out.text[s:e] for s, e in out.token_spans] == ['[SEG]'] * 2
    assert [out.text[s:e] for s, e in out.phrase_spans] == [
        'A red circle', 'a blue square'
    ]
    plain, phrases = parse_markup(out.text, 'glamm')
    assert plain == text
    assert phrases == spans
    # LLaVA-G, official spacing-free variant parses the same way.
    plain, phrases = parse_markup(
        'A <g_s>man<g_e><seg> rides <g_s> a horse <g_e> <seg>.', 'llava_g')
    assert plain == 'A man rides a horse.'
    assert [plain[s:e] for s, e in phrases] == ['man', 'a horse']


def test_bare_token_markup():
    out = insert_markup('Sure, the red circle.', [(6, 20)], '[SEG]', '[SEG]')
    assert out.text == 'Sure, [SEG].'
    assert out.token_spans == [(6, 11)]
    plain, phrases = parse_markup('It is [SEG].', 'glamm', bare_tokens=True)
    assert plain == 'It is.' and phrases == [(5, 5)]
    with pytest.raises(MarkupError, match='no preceding'):
        parse_markup('It is [SEG].', 'glamm')


def test_parse_answer_and_captions_share_one_rule():
    text = 'A <p> red circle </p> [SEG] next to <p>a  square</p> [SEG]. </s>'
    caption, phrases = parse_answer(text, 'glamm', stop_tokens=('</s>', ))
    assert caption == 'A red circle next to a square .'
    assert phrases == ['red circle', 'a square']
    # the metric's fallback (official GCG cleaning) agrees on model text
    assert clean_official_caption(
        "ASSISTANT: 'A <p> red circle </p> [SEG] .'") == 'A red circle .'
    caption, phrases = parse_answer(
        'I see <g_s>a man<g_e><seg> and [SEG] .', 'llava_g')
    assert caption == 'I see a man and [SEG] .'
    assert phrases == ['a man']
    with pytest.raises(ValueError, match='unknown markup style'):
        parse_answer('x', 'lisa')


def test_insert_markup_rejects_bad_spans():
    with pytest.raises(ValueError):
        insert_markup('abc def', [(4, 7), (0, 3)], '[SEG]', '[SEG]')
    with pytest.raises(ValueError):
        insert_markup('abc', [(0, 3)], '<p> {phrase} </p>', '[SEG]')


def test_strip_markup():
    assert strip_markup('<p> A man </p> [SEG] on\n<p> a horse </p> [SEG].'
                        '</s>') == 'A man on a horse .'
    assert strip_markup('<g_s> A man <g_e> <seg> rides.',
                        'llava_g') == 'A man rides.'


def test_grounding_data_error_message():
    err = GroundingDataError.from_results(
        dict(source='refcoco', img_id=42), 'phrases', 'count mismatch')
    assert str(err) == ("[source='refcoco', img_id=42, field='phrases'] "
                        'count mismatch')
    assert isinstance(err, ValueError) and err.field == 'phrases'
