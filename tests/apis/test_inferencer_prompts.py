"""GroundingInferencer records: ``history=`` (earlier turns become the
record's conversation, their ``<bbox>`` placeholders take the first boxes) and
``points=`` / ``scribbles=`` region prompts (one per placeholder, like
boxes)."""
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


def test_points_and_scribbles_fill_placeholders(inferencer):
    rec, = inferencer.build_records(
        IMG, '<bbox> or <bbox> or <bbox>?',
        boxes=[[0, 0, 5, 5], None, None], points=[None, [3, 4], None],
        scribbles=[None, None, [[1, 1], [5, 3], [9, 2]]])
    assert rec['regions'] == [dict(bbox=[0, 0, 5, 5]),
                              dict(bbox=[3, 4, 4, 5]),
                              dict(bbox=[1, 1, 10, 4])]
    vp = rec['visual_prompts']
    assert [p['type'] for p in vp] == ['box', 'click', 'scribble']
    assert vp[1]['points'].tolist() == [[3, 4]]
    assert vp[2]['points'].shape == (3, 2)
    masked = inferencer._add_scribble_masks(rec)['visual_prompts'][2]['mask']
    assert masked.shape == (20, 30) and masked.dtype == np.float32
    assert masked[1, 1] == masked[3, 5] == masked[2, 9] == 1  # its points
    assert masked[15, 25] == 0 and masked.sum() < 60
    one, = inferencer.build_records(IMG, 'Is <bbox> red?', points=[7, 8])
    assert one['regions'] == [dict(bbox=[7, 8, 8, 9])]
    assert 'visual_prompts' not in inferencer.build_records(
        IMG, 'Is <bbox> red?', boxes=[0, 0, 5, 5])[0]


def test_region_prompt_errors(inferencer):
    with pytest.raises(ValueError, match=r"region 0: prompts in \['boxes', "
                       r"'points'\]"):
        inferencer.build_records(IMG, '<bbox>?', boxes=[[0, 0, 5, 5]],
                                 points=[[1, 1]])
    with pytest.raises(ValueError, match='region 0: no prompt'):
        inferencer.build_records(IMG, '<bbox> <bbox>?',
                                 boxes=[None, [0, 0, 5, 5]], points=[None])
    with pytest.raises(ValueError, match=r'bad scribble \[\[1.0, 1.0\]\]'):
        inferencer.build_records(IMG, '<bbox>?', scribbles=[[[1, 1]]])
    with pytest.raises(ValueError, match=r'1 region placeholder.*2 region '
                       r'prompt'):
        inferencer.build_records(IMG, '<bbox>?', points=[[1, 1], [2, 2]])


def test_points_need_a_prompt_encoder(inferencer):
    import torch
    inferencer.model = torch.nn.Linear(1, 1)  # no prompt_encoder
    with pytest.raises(ValueError, match=r"Linear takes box prompts only.*"
                       r"\['click'\]"):
        inferencer(IMG, 'Is <bbox> red?', points=[3, 4])
