"""Heuristic baselines against hand-computed IoUs on a two-object image."""
import json
import pickle
from pathlib import Path

import pytest

from mmgrounding.testing import load_script

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    return load_script('tools/analysis_tools/synthetic_baselines.py')


def _square(x, y, s):
    return [[x, y, x + s, y, x + s, y + s, x, y + s]]


@pytest.fixture
def world(tmp_path):
    (tmp_path / 'annotations').mkdir()
    anns = [
        # red square 4x4 = 16 px (the referent), blue circle-ish 2x2 = 4 px
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
    (tmp_path / 'annotations' / 'instances.json').write_text(json.dumps(coco))
    refs = [dict(ref_id=0, ann_id=1, image_id=1, split='val', category_id=2,
                 sentences=[dict(sent='red square', sent_id=0),
                            dict(sent='blue square', sent_id=1)])]
    with open(tmp_path / 'annotations' / 'refs(unc).p', 'wb') as f:
        pickle.dump(refs, f)
    return tmp_path


def test_baselines_hand_computed(world):
    scores = _tool().evaluate_baselines(str(world), 'val')
    eps = 1e-5
    # every shape: I = 16, U = 20 for both sentences; gIoU = sum / (N + eps)
    assert scores['every shape']['gIoU'] == pytest.approx(
        2 * (16 / (20 + eps)) / (2 + eps))
    assert scores['every shape']['cIoU'] == pytest.approx(32 / 40)
    # largest object is the referent
    assert scores['largest object']['gIoU'] == pytest.approx(
        2 * (16 / (16 + eps)) / (2 + eps))
    # named colour: 'red' -> the referent; 'blue' -> the circle (I=0, U=20)
    assert scores['named colour']['gIoU'] == pytest.approx(
        (16 / (16 + eps) + 0) / (2 + eps))
    # named shape: 'square' twice -> the referent
    assert scores['named shape']['cIoU'] == pytest.approx(1.0)


def test_rec_accuracy_hand_computed(world):
    """REC Acc@0.5 of each heuristic's mask box vs the referent's box.

    Referent box [0, 0, 4, 4] (16 px); the circle's box [6, 6, 8, 8]."""
    scores = _tool().evaluate_baselines(str(world), 'val')
    # every shape: union box [0, 0, 8, 8] (64 px), IoU 16 / 64 = 0.25: miss
    assert scores['every shape']['rec_acc'] == 0.0
    assert scores['largest object']['rec_acc'] == 1.0
    # 'red' -> the referent (hit); 'blue' -> the circle (IoU 0): 1 of 2
    assert scores['named colour']['rec_acc'] == 0.5
    assert scores['named shape']['rec_acc'] == 1.0
    assert scores['named shape']['num_expressions'] == 2


def test_unknown_split_raises(world):
    with pytest.raises(ValueError, match='testB'):
        _tool().evaluate_baselines(str(world), 'testB')


def test_table_is_scaled_like_the_metrics(world):
    tool = _tool()
    table = tool.format_table(tool.evaluate_baselines(str(world), 'val'))
    assert '| every shape | 80.00 | 80.00 | 0.00 | 2 |' in table
    assert '| largest object | 100.00 | 100.00 | 100.00 | 2 |' in table
