"""GroundingInferencer ``history=``: earlier turns become the record's
conversation, their ``<bbox>`` placeholders take the first boxes."""
import numpy as np
import pytest

from mmgrounding.apis import GroundingInferencer

IMG = np.zeros((20, 30, 3), np.uint8)


@pytest.fixture
def inferencer():
    # build_records needs no model: skip loading one
    return object.__new__(GroundingInferencer)


def test_history_turns_precede_the_question(inferencer):
    rec, = inferencer.build_records(
        IMG, 'And <bbox>?', boxes=[[0, 0, 5, 5], [1, 1, 9, 9]],
        history=[('What is <bbox>?', 'A red circle.'), ('Sure?', 'Yes.')])
    assert rec['conversations'] == [
        dict(role='user', text='<image>\nWhat is <bbox>?'),
        dict(role='assistant', text='A red circle.'),
        dict(role='user', text='Sure?'),
        dict(role='assistant', text='Yes.'),
        dict(role='user', text='And <bbox>?'),
    ]
    assert rec['regions'] == [dict(bbox=[0, 0, 5, 5]),
                              dict(bbox=[1, 1, 9, 9])]
    no_history, = inferencer.build_records(IMG, 'Hi', history=[])
    assert no_history['conversations'] == [
        dict(role='user', text='<image>\nHi')]


def test_history_boxes_are_counted_and_checked(inferencer):
    with pytest.raises(ValueError, match=r'the prompt and its history has 2 '
                       r'region placeholder.*1 box'):
        inferencer.build_records(IMG, 'And <bbox>?', boxes=[[0, 0, 5, 5]],
                                 history=[('What is <bbox>?', 'A circle.')])
    with pytest.raises(ValueError, match='history has 1 entries for 2'):
        inferencer.build_records([IMG, IMG], 'Hi',
                                 history=[[('a', 'b')]])
    with pytest.raises(ValueError, match=r'history\[0\] must be a list of'):
        inferencer.build_records([IMG, IMG], 'Hi',
                                 history=[['only user'], []])
    two = inferencer.build_records([IMG, IMG], 'Hi',
                                   history=[[('a', 'b')], []])
    assert len(two[0]['conversations']) == 3
    assert len(two[1]['conversations']) == 1
