"""Region-question baselines against hand-computed accuracies."""
import json

import pytest

from mmgrounding.testing import load_script


def _square(x, y, s):
    return [[x, y, x + s, y, x + s, y + s, x, y + s]]


def _entry(id_, turns, q_gd_ls):
    convs = []
    for q, a in turns:
        convs += [dict(**{'from': 'human'}, value=q),
                  dict(**{'from': 'gpt'}, value=a)]
    convs[0]['value'] = '<image>\n' + convs[0]['value']
    return dict(id=id_, image='1.png', conversations=convs, q_gd_ls=q_gd_ls)


@pytest.fixture
def world(tmp_path):
    ann_dir = tmp_path / 'annotations'
    (ann_dir / 'llava_g').mkdir(parents=True)
    anns = [
        # the largest object: a large red square (16 px); a small blue circle
        dict(id=1, image_id=1, category_id=2, iscrowd=0, area=16,
             bbox=[0, 0, 4, 4], segmentation=_square(0, 0, 4),
             attributes=dict(color='red', shape='square', size='large')),
        dict(id=2, image_id=1, category_id=1, iscrowd=0, area=4,
             bbox=[6, 6, 2, 2], segmentation=_square(6, 6, 2),
             attributes=dict(color='blue', shape='circle', size='small')),
    ]
    coco = dict(images=[dict(id=1, file_name='1.png', height=10, width=10)],
                annotations=anns,
                categories=[dict(id=1, name='circle'),
                            dict(id=2, name='square')])
    (ann_dir / 'instances.json').write_text(json.dumps(coco))
    # train majority: blue (2 of 3), circle, small
    train = [
        _entry('000000000001', [('What color is <obj>?', 'It is blue.'),
                                ('What color is <obj>?', 'It is red.'),
                                ('What shape is <obj>?', 'It is a circle.')],
               [[2], [1], [2]]),
        _entry('000000000001', [('What color is <obj>?', 'It is blue.'),
                                ('Is <obj> small or large?', 'It is small.')],
               [[2], [2]]),
    ]
    val = [
        _entry('000000000001', [('What color is <obj>?', 'It is red.'),
                                ('What shape is <obj>?', 'It is a circle.'),
                                ('Is <obj> small or large?', 'It is small.'),
                                ('Please describe <obj>.',
                                 'A small blue circle.')],
               [[1], [2], [2], [2]]),
    ]
    (ann_dir / 'llava_g' / 'llava_instruct_visual_prompt_train.json'
     ).write_text(json.dumps(train))
    (ann_dir / 'llava_g' / 'llava_instruct_visual_prompt_val.json'
     ).write_text(json.dumps(val))
    return tmp_path


def test_baselines_hand_computed(world):
    tool = load_script('tools/analysis_tools/region_qa_baselines.py')
    scores = tool.evaluate_baselines(str(world))
    largest = scores['name the largest object']
    # answers red / square / large: only the colour question is right
    assert (largest['color_acc'], largest['shape_acc'],
            largest['size_acc']) == (100.0, 0.0, 0.0)
    assert largest['overall'] == pytest.approx(100 / 3)
    assert largest['num_unscored'] == 1.0
    majority = scores['majority answer']
    # answers blue / circle / small
    assert (majority['color_acc'], majority['shape_acc'],
            majority['size_acc']) == (0.0, 100.0, 100.0)
    assert majority['overall'] == pytest.approx(200 / 3)
    table = tool.format_table(scores)
    assert '| name the largest object | 100.0 | 0.0 | 0.0 | 33.3 |' in table
