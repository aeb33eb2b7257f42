"""PaintMarks: Set-of-Mark prompts painted on the image and cited in text."""
import numpy as np
import pytest

from mmgrounding.datasets.transforms import (FormatGroundedConversation,
                                             PaintMarks)
from mmgrounding.datasets.transforms.paint_marks import MARK_COLORS
from mmgrounding.registry import TRANSFORMS
from mmgrounding.structures import GroundingDataError

H, W = 64, 96


def mask(x1, y1, x2, y2):
    m = np.zeros((H, W), dtype=np.float32)
    m[y1:y2, x1:x2] = 1
    return m


def results(prompts, user='<image>\nWhat is <obj> next to <obj>?',
            answer='It is a cup.', phrases=None):
    return dict(
        img=np.full((H, W, 3), 100, dtype=np.uint8),
        img_id=5, source='unit',
        conversations=[dict(role='user', text=user),
                       dict(role='assistant', text=answer)],
        phrases=phrases if phrases is not None else [],
        regions=[dict(instance_id=p.get('instance_id')) for p in prompts],
        visual_prompts=prompts)


def test_registered_and_no_marks_is_identity():
    assert TRANSFORMS.get('PaintMarks') is PaintMarks
    prompts = [dict(type='box', box=np.array([1, 1, 5, 5], np.float32),
                    instance_id=0),
               dict(type='click', points=np.array([[3, 3]], np.float32),
                    instance_id=1)]
    res = results(prompts)
    img = res['img'].copy()
    out = PaintMarks()(res)
    assert np.array_equal(out['img'], img)
    assert out['conversations'][0]['text'].count('<obj>') == 2
    assert 'painted_marks' not in out


def test_mark_painted_cited_and_removed():
    prompts = [dict(type='click', points=np.array([[3, 3]], np.float32),
                    instance_id=0),
               dict(type='mark', mask=mask(40, 10, 80, 50), instance_id=1)]
    res = results(prompts, phrases=[dict(turn=1, start=8, end=11)])
    out = PaintMarks(alpha=0.5)(res)
    assert out['conversations'][0]['text'] == \
        '<image>\nWhat is <obj> next to [1]?'
    assert [r['instance_id'] for r in out['regions']] == [0]
    assert [p['type'] for p in out['visual_prompts']] == ['click']
    assert out['painted_marks'] == [dict(number=1, instance_id=1,
                                         bbox=[40, 10, 80, 50])]
    img = out['img']
    # far from the mark: untouched; inside, away from outline and label:
    # 0.5 * 100 + 0.5 * colour (BGR)
    assert (img[60, 5] == 100).all()
    expected = np.round(0.5 * 100 + 0.5 * np.array(MARK_COLORS[0]))
    assert np.array_equal(img[14, 44], expected.astype(np.uint8))
    # the label is written at the centre of the mark (white text)
    centre = img[25:35, 55:65].reshape(-1, 3)
    assert (centre > 200).all(1).any()  # anti-aliased white strokes


def test_phrase_spans_after_the_placeholder_shift():
    user = '<image>\nIs <obj> left of the red cup?'
    prompts = [dict(type='mark', mask=mask(2, 2, 20, 20), instance_id=0)]
    start = user.index('the red cup')
    res = results(prompts, user=user,
                  phrases=[dict(turn=0, start=start, end=start + 11),
                           dict(turn=1, start=0, end=2)])
    out = PaintMarks(mark_format='mark {}')(res)
    text = out['conversations'][0]['text']
    assert text == '<image>\nIs mark 1 left of the red cup?'
    p = out['phrases'][0]
    assert text[p['start']:p['end']] == 'the red cup'
    assert out['phrases'][1] == dict(turn=1, start=0, end=2)


def test_several_marks_numbered_in_prompt_order_then_formatted():
    prompts = [dict(type='mark', mask=mask(2, 2, 20, 20), instance_id=0),
               dict(type='box', box=np.array([1, 1, 5, 5], np.float32),
                    instance_id=1),
               dict(type='mark', mask=mask(50, 30, 90, 60), instance_id=2)]
    res = results(prompts, user='<image>\n<obj>, <obj> and <obj>?')
    out = PaintMarks()(res)
    assert out['conversations'][0]['text'] == '<image>\n[1], <obj> and [2]?'
    assert [m['number'] for m in out['painted_marks']] == [1, 2]
    assert [m['instance_id'] for m in out['painted_marks']] == [0, 2]
    # FormatGroundedConversation accepts the result (placeholders == regions)
    formatted = FormatGroundedConversation(style='llava_g')(out)
    assert formatted['text'].count('<obj>') == 1
    assert '[1], <obj> and [2]?' in formatted['text']


def test_bad_marks_raise():
    empty = [dict(type='mark', mask=np.zeros((H, W), np.float32))]
    with pytest.raises(GroundingDataError, match='empty'):
        PaintMarks()(results(empty, user='<image>\n<obj>?'))
    wrong = [dict(type='mark', mask=np.ones((4, 4), np.float32))]
    with pytest.raises(GroundingDataError, match='image size'):
        PaintMarks()(results(wrong, user='<image>\n<obj>?'))
    missing = [dict(type='mark', mask=mask(1, 1, 4, 4))]
    with pytest.raises(GroundingDataError, match='placeholders'):
        PaintMarks()(results(missing, user='<image>\nno placeholder'))
    with pytest.raises(ValueError, match='mark_format'):
        PaintMarks(mark_format='[n]')
