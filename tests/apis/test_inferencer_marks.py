"""GroundingInferencer ``marks=`` (Set-of-Mark): records, the mark mask, the
pipeline's PaintMarks step, and which models take which prompt kinds."""
import numpy as np
import pytest
import torch

from mmgrounding.apis import GroundingInferencer
from mmgrounding.models.lmms.base import PromptSlot

IMG = np.zeros((20, 30, 3), np.uint8)


@pytest.fixture
def inferencer():
    return object.__new__(GroundingInferencer)  # build_records needs no model


def test_a_mark_is_a_filled_box_in_placeholder_order(inferencer):
    rec, = inferencer.build_records(
        IMG, '<obj> or <obj>?', boxes=[[0, 0, 5, 5], None],
        marks=[None, [2.5, 3, 8, 10]])
    assert [p['type'] for p in rec['visual_prompts']] == ['box', 'mark']
    assert rec['regions'][1] == dict(bbox=[2.5, 3.0, 8.0, 10.0])
    mask = inferencer._add_scribble_masks(
        dict(rec, img=IMG))['visual_prompts'][1]['mask']
    assert mask.shape == (20, 30)
    # floor(x1) .. ceil(x2), floor(y1) .. ceil(y2): columns 2-7, rows 3-9
    expected = np.zeros((20, 30), np.float32)
    expected[3:10, 2:8] = 1
    assert np.array_equal(mask, expected)
    with pytest.raises(ValueError, match=r'bad mark \[5.0, 5.0, 1.0, 9.0\]'):
        inferencer.build_records(IMG, '<obj>?', marks=[[5, 5, 1, 9]])
    with pytest.raises(ValueError, match='region 0: prompts in'):
        inferencer.build_records(IMG, '<obj>?', boxes=[[0, 0, 5, 5]],
                                 marks=[[0, 0, 5, 5]])


def test_the_pipeline_paints_marks_and_samples_no_prompts(inferencer):
    from mmengine.registry import init_default_scope
    init_default_scope('mmgrounding')
    cfg = dict(test_dataloader=dict(dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadGroundingAnnotations'),
        dict(type='SampleVisualPrompts', prompt_types=dict(box=1.0)),
        dict(type='FormatGroundedConversation', style='llava_g'),
        dict(type='PackGroundingInputs')
    ])))
    steps = [t['type'] for t in inferencer._test_pipeline_cfg(cfg)]
    assert 'SampleVisualPrompts' in steps
    pipeline = inferencer._init_pipeline(cfg)
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names == ['InferencerLoader', 'LoadGroundingAnnotations',
                     'PaintMarks', 'FormatGroundedConversation',
                     'PackGroundingInputs']


class _Model(torch.nn.Module):

    def __init__(self, prompts, encoder=True):
        super().__init__()
        self.enc = torch.nn.Linear(1, 1) if encoder else None
        self.prompt_slots = {'<obj>': PromptSlot('enc', 'v', prompts)}


def test_which_models_read_visual_prompts(inferencer):
    inferencer.model = _Model('visual_prompts_grounding')
    assert inferencer._reads_visual_prompts()
    rec, = inferencer.build_records(IMG, '<obj>?', boxes=[[0, 0, 5, 5]])
    # a box still reaches a visual-prompt encoder as a prompt dict
    assert rec['visual_prompts'][0]['type'] == 'box'
    inferencer.model = _Model('visual_prompts_grounding', encoder=False)
    assert not inferencer._reads_visual_prompts()
    inferencer.model = _Model('region_bboxes_clip')  # RoIAlign-style
    assert not inferencer._reads_visual_prompts()
    with pytest.raises(ValueError, match=r"takes box prompts only.*"
                       r"\['scribble'\]"):
        inferencer(IMG, 'Is <obj> red?', scribbles=[[[1, 1], [4, 4]]])
