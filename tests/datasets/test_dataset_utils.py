"""Markup parsing and record checks shared by the loaders."""
import pytest

from mmgrounding.datasets.utils import RecordError, check_record, stable_seed
from mmgrounding.structures.markup import MarkupError, parse_markup


@pytest.mark.parametrize('text, clean, phrases', [
    ('I see <g_s> a red circle <g_e> <seg> and <g_s> two squares <g_e> '
     '<seg>.', 'I see a red circle and two squares.',
     ['a red circle', 'two squares']),
    ("(<g_s> the man <g_e><seg>)'s hat", "(the man)'s hat", ['the man']),
    ('<g_s> only marked <g_e> text', 'only marked text', []),
    ('line\n<g_s> x <g_e> <seg>, y', 'line\nx, y', ['x']),
    ('plain text', 'plain text', []),
])
def test_parse_llava_g_markup(text, clean, phrases):
    out, spans = parse_markup(text, 'llava_g')
    assert out == clean
    assert [out[s:e] for s, e in spans] == phrases


def test_parse_glamm_markup():
    out, spans = parse_markup(
        'A <p> red circle </p> [SEG] near <p> a square </p> [SEG].', 'glamm')
    assert out == 'A red circle near a square.'
    assert [out[s:e] for s, e in spans] == ['red circle', 'a square']


@pytest.mark.parametrize('text, match', [
    ('<seg> alone', 'no preceding'),
    ('<g_s> a <g_s> b <g_e>', 'nested'),
    ('<g_s> open', 'unclosed'),
    ('a <g_e>', 'without'),
    ('<g_s> <g_e> <seg>', 'empty phrase'),
])
def test_parse_errors(text, match):
    with pytest.raises(MarkupError, match=match):
        parse_markup(text, 'llava_g')


def record(**kw):
    rec = dict(img_path='x.png', img_id=1, height=10, width=10, task='gcg',
               conversations=[dict(role='user', text='<image>\nhi'),
                              dict(role='assistant', text='a dot.')],
               phrases=[dict(turn=1, start=0, end=5, text='a dot',
                             instance_ids=[0])],
               instances=[dict(bbox=[1, 1, 3, 3],
                               mask=[[1, 1, 3, 1, 3, 3]])])
    rec.update(kw)
    return rec


def test_check_record_accepts_and_rejects():
    check_record(record())
    with pytest.raises(RecordError, match='role'):
        check_record(record(conversations=[dict(role='assistant',
                                                text='x')]))
    bad = record()
    bad['phrases'][0]['text'] = 'a do'
    with pytest.raises(RecordError) as info:
        check_record(bad)
    assert info.value.field == 'phrases[0].text'
    bad = record()
    bad['phrases'][0]['instance_ids'] = [3]
    with pytest.raises(RecordError, match=r'not in \[0, 1\)'):
        check_record(bad)
    bad = record(instances=[dict(bbox=[1, 1, 30, 3], mask=None)])
    with pytest.raises(RecordError, match='outside'):
        check_record(bad)
    bad = record(regions=[dict(instance_id=0, bbox=[1, 1, 3, 3])],
                 region_token='<bbox>')
    with pytest.raises(RecordError, match='0 <bbox> placeholders'):
        check_record(bad)


def test_stable_seed_is_deterministic():
    assert stable_seed(0, 'refcoco', 5) == stable_seed(0, 'refcoco', 5)
    assert stable_seed(0, 'refcoco', 5) != stable_seed(1, 'refcoco', 5)
