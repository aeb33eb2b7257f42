"""Markup parsing and record checks shared by the loaders."""
import pytest

from mmgrounding.datasets.utils import RecordError, check_record, stable_seed
from mmgrounding.structures.errors import GroundingDataError
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


# --------------------------------------------------------------------------
# the shared bad-input helpers
def _runs_by_hand(mask):
    """COCO run lengths: column-major, starting with a run of zeros."""
    flat = mask.flatten(order='F').tolist()
    runs, current, n = [], 0, 0
    for v in flat:
        if v != current:
            runs.append(n)
            current, n = v, 0
        n += 1
    return runs + [n]


def test_rle_counts_match_hand_computed_runs():
    import numpy as np
    from pycocotools import mask as mask_utils

    from mmgrounding.datasets.utils import rle_counts
    rng = np.random.RandomState(0)
    for t in range(60):
        h, w = rng.randint(1, 30, size=2)
        mask = (rng.rand(h, w) < rng.rand()).astype(np.uint8)
        if t % 3 == 0:  # long runs: multi-digit and negative deltas
            mask[:] = 0
            mask[h // 4:h // 2 + 1, w // 3:] = 1
        rle = mask_utils.encode(np.asfortranarray(mask))
        assert rle_counts(rle['counts']).tolist() == _runs_by_hand(mask)
    with pytest.raises(ValueError, match='truncated'):
        rle_counts('0P')  # 'P' = 32: "more digits follow", then nothing
    with pytest.raises(ValueError, match='invalid character'):
        rle_counts('0 1')


@pytest.mark.parametrize('counts, message', [
    ('5:', 'cover 15 pixels but the size [4, 4] has 16'),
    ([3, 20], 'cover 23 pixels'),
    ([8, -2, 10], 'negative'),
    ({'x': 1}, 'malformed RLE counts'),
])
def test_check_rle_rejects_counts_not_covering_the_size(counts, message):
    from mmgrounding.datasets.utils import check_rle
    check_rle(dict(size=[4, 4], counts=[3, 13]), 4, 4)  # 3 + 13 = 16
    with pytest.raises(RecordError) as info:
        check_rle(dict(size=[4, 4], counts=counts), 4, 4)
    assert message in info.value.message


@pytest.mark.parametrize('name, ok', [
    ('a/b.png', True), ('a/../b.png', True), ('../b.png', False),
    ('a/../../b.png', False), ('/etc/passwd', False), ('C:\\x.png', False),
    ('s3://bucket/x.png', False), ('', False), (None, False), (3, False),
])
def test_resolve_path_refuses_escapes(name, ok):
    from mmgrounding.datasets.utils import resolve_path
    if ok:
        assert resolve_path('root', name, 'file_name') == f'root/{name}'
        return
    with pytest.raises(RecordError) as info:
        resolve_path('root', name, 'file_name')
    assert info.value.field == 'file_name' and info.value.value == name


def test_annotation_file_finds_repeated_keys(tmp_path):
    from mmgrounding.datasets.utils import AnnotationFile
    path = tmp_path / 'a.json'
    path.write_text('[{"id": 1, "g": {"x": 1, "y": 2}}, '
                    '{"id": 2, "g": {"x": 1, "x": 3}}]')
    ann = AnnotationFile(str(path), list, 'a list')
    ann.check_keys(ann.data[0])  # clean record
    with pytest.raises(RecordError) as info:
        ann.check_keys(ann.data[1])
    assert info.value.field == 'g.x'
    path.write_text('{"k": 1, "k": 2}')
    with pytest.raises(GroundingDataError, match="record='k'"):
        AnnotationFile(str(path), dict, 'an object')
    path.write_text('[1, 2')
    with pytest.raises(GroundingDataError,
                       match=r"\[file='a.json'\] invalid or truncated JSON"):
        AnnotationFile(str(path), list, 'a list')


def test_grounding_error_message_and_pickling():
    import pickle
    err = GroundingDataError('bad', source='gvc', img_id=1, field='gd_ls',
                             file='/x/y/gvc.json', record='0001', value=[1])
    text = ("[source='gvc', file='gvc.json', record='0001', "
            "field='gd_ls'] bad (value: [1])")
    assert str(err) == text
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == text and again.record == '0001'
    assert again.field == 'gd_ls' and again.value == [1]
