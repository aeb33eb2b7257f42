"""demo/web_demo.py without a browser: prompt and box bookkeeping, input
checks, the coloured answer HTML, checkpoint checks and one app turn."""
import mmcv
import numpy as np
import pytest
import torch
from demo_helpers import IMG1, MAX_NEW, TINY

from mmgrounding.apis import GroundingInferencer
from mmgrounding.testing import load_script

wd = load_script('demo/web_demo.py')
IMAGE = np.zeros((32, 48, 3), np.uint8)


def clicks(*xys, mode=None):
    prompts = wd.VisualPrompts()
    for x, y in xys:
        prompts = wd.add_click(prompts, x, y, mode or wd.BOX_MODE)
    return prompts


def test_two_clicks_make_a_box_and_undo_reverts():
    p = wd.add_click(wd.VisualPrompts(), 40, 5)
    assert p.pending == (40.0, 5.0) and p.boxes == ()
    p = wd.add_click(p, 10, 30)  # opposite corners, any order
    assert p.boxes == ((10.0, 5.0, 40.0, 30.0), ) and p.pending is None
    p = wd.add_click(p, 3, 4, wd.POINT_MODE)
    assert p.points == ((3.0, 4.0), )
    assert wd.describe_prompts(p) == 'box 1 [10, 5, 40, 30]; point 1 (3, 4)'
    p = wd.add_click(p, 1, 1)
    assert wd.undo_click(p).pending is None
    assert wd.undo_click(wd.undo_click(p)).points == ()
    assert wd.undo_click(wd.undo_click(wd.undo_click(p))).boxes == ()
    with pytest.raises(wd.DemoError, match='empty box'):
        clicks((5, 5), (5, 20))


def test_build_request_pairs_boxes_with_placeholders():
    two = clicks((0, 0), (10, 10), (20, 20), (30, 25))
    req = wd.build_request(IMAGE, 'Chat', 'Is <bbox> left of <bbox>?', two)
    assert req == wd.Request('chat', 'Is <bbox> left of <bbox>?',
                             [[0, 0, 10, 10], [20, 20, 30, 25]], [])
    req = wd.build_request(IMAGE, 'region', '', clicks((1, 2), (9, 8)))
    assert req.prompt == wd.REGION_QUESTION and req.task == 'chat'
    assert req.boxes == [[1, 2, 9, 8]]
    assert wd.build_request(IMAGE, 'gcg', '', wd.VisualPrompts()) == \
        wd.Request('gcg', None, [], [])
    assert wd.build_request(IMAGE, 'Referring segmentation', ' red disc ',
                            wd.VisualPrompts()).prompt == 'red disc'


@pytest.mark.parametrize('args, message', [
    ((None, 'chat', 'hi', wd.VisualPrompts()), 'upload an image'),
    ((IMAGE, 'chat', 'What is <bbox>?',
      clicks((0, 0), (10, 10), (20, 20), (30, 25))),
     r'2 box\(es\) drawn but the prompt has 1 <bbox>'),
    ((IMAGE, 'chat', 'What is this?', clicks((0, 0), (10, 10))),
     r'1 box\(es\) drawn but the prompt has 0 <bbox>'),
    ((IMAGE, 'chat', '<bbox> or <bbox>?', clicks((0, 0), (10, 10))),
     r'2 <bbox> placeholder\(s\) but only 1 box'),
    ((IMAGE, 'chat', 'hi', clicks((0, 0))), 'half drawn'),
    ((IMAGE, 'chat', '', wd.VisualPrompts()), 'type a prompt'),
    ((IMAGE, 'gcg', '', clicks((0, 0), (10, 10))), 'GCG takes no boxes'),
    ((IMAGE, 'refseg', '', wd.VisualPrompts()), 'referring expression'),
    ((IMAGE, 'region', '', wd.VisualPrompts()), 'draw a box'),
    ((IMAGE, 'region', '', clicks((0, 0), (10, 10), (20, 20), (30, 25))),
     'asks about one box but 2'),
    ((IMAGE, 'chat', 'hi', clicks((3, 3), mode=wd.POINT_MODE)),
     'box prompts only'),
    ((IMAGE, 'caption', 'hi', wd.VisualPrompts()), 'unknown task'),
])
def test_build_request_refuses_bad_input(args, message):
    with pytest.raises(wd.DemoError, match=message):
        wd.build_request(*args)


def test_answer_html_colours_phrases_as_their_masks():
    text = '<p> a red circle </p> [SEG] left of <p> a <square> </p> [SEG].</s>'
    got = wd.answer_html(text)
    span = ('<span class="grounded" data-mask="{k}" style="background: '
            'rgba({c}, 0.35); border-bottom: 3px solid rgb({c})">{t}</span>')
    assert got == (
        '<div class="answer">' +
        span.format(k=0, c='230, 25, 75', t='a red circle') + ' left of ' +
        span.format(k=1, c='60, 180, 75', t='a &lt;square&gt;') + '.</div>')
    chip = wd.answer_html('Sure, it is [SEG].', ['the red circle'])
    assert chip == (
        '<div class="answer">Sure, it is <span class="grounded chip" '
        'data-mask="0" style="background: rgb(230, 25, 75); color: white; '
        'padding: 0 4px; border-radius: 4px">the red circle</span>.</div>')
    assert 'mask 0' in wd.answer_html('It is [SEG].')
    # cut at max_new_tokens: the unclosed phrase's tag goes, as in captions
    cut = wd.answer_html('<p>a</p>[SEG]<p>a')
    assert cut.endswith('>a</span> a</div>') and '&lt;p&gt;' not in cut
    assert wd.answer_html('plain & simple') == \
        '<div class="answer">plain &amp; simple</div>'


def test_check_checkpoint_refuses_other_models():
    model = {'a.weight': torch.zeros(2, 3), 'b.bias': torch.zeros(4)}
    wd.check_checkpoint(model, {'a.weight': torch.ones(2, 3)}, 'x.pth',
                        'c.py')  # a subset (only trained weights) is fine
    with pytest.raises(wd.DemoError,
                       match=r'x.pth does not match config c.py: 1 shape '
                       r'mismatch\(es\), e.g. a.weight: checkpoint \(3, 3\)'):
        wd.check_checkpoint(model, {'a.weight': torch.ones(3, 3)}, 'x.pth',
                            'c.py')
    with pytest.raises(wd.DemoError, match=r"does not have, e.g. \['z'\]"):
        wd.check_checkpoint(model, {'a.weight': torch.ones(2, 3),
                                    'z': torch.ones(1)}, 'x.pth', 'c.py')
    with pytest.raises(wd.DemoError, match='no parameter name in common'):
        wd.check_checkpoint(model, {}, 'x.pth', 'c.py')


def test_default_checkpoint_reads_last_checkpoint(tmp_path):
    assert wd.default_checkpoint(str(tmp_path)) is None
    ckpt = tmp_path / 'iter_1000.pth'
    ckpt.write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(ckpt))
    assert wd.default_checkpoint(str(tmp_path)) == str(ckpt)


def test_load_refuses_a_checkpoint_of_another_config(demo_world, tmp_path,
                                                     monkeypatch):
    monkeypatch.chdir(demo_world)
    bad = tmp_path / 'detector.pth'
    torch.save(dict(state_dict={'backbone.conv1.weight': torch.zeros(1)}),
               bad)
    with pytest.raises(wd.DemoError, match='detector.pth does not match '
                       'config glamm_llama-tiny'):
        wd.load_inferencer(str(TINY), str(bad))
    with pytest.raises(wd.DemoError, match='no checkpoint file'):
        wd.load_inferencer(str(TINY), str(tmp_path / 'missing.pth'))
    with pytest.raises(wd.DemoError, match='no config file'):
        wd.load_inferencer(str(tmp_path / 'missing.py'), None)


def test_app_turns_match_the_inferencer(demo_world, cycle_checkpoint,
                                        monkeypatch):
    """Two chat turns through the app: the answer HTML is the inferencer's
    answer for the same inputs (the second with the first as history), the
    mask is drawn in the first palette colour, the prompt box in gold."""
    monkeypatch.chdir(demo_world)
    app = wd.DemoApp(str(TINY), str(cycle_checkpoint),
                     max_new_tokens=MAX_NEW)
    ref = GroundingInferencer(str(TINY), weights=str(cycle_checkpoint))
    ref.model.generation_cfg['max_new_tokens'] = MAX_NEW
    img = mmcv.imread(IMG1, channel_order='rgb')
    box = clicks((20, 30), (90, 100))
    html1, drawn, turn1 = app.turn(img, 'Chat', 'What is in <bbox>?', box,
                                   [])
    exp1 = ref(IMG1, 'What is in <bbox>?', boxes=[[20, 30, 90, 100]])[0]
    assert exp1['text'].count('[SEG]') >= 1 and exp1['masks'][0].any()
    assert turn1 == wd.Turn('What is in <bbox>?', exp1['caption'],
                            ((20.0, 30.0, 90.0, 100.0), ))
    assert html1.count('class="grounded"') == exp1['text'].count('[SEG]')
    assert '>a</span>' in html1
    # the image panel: mask 0 blended with PALETTE[0] (alpha 0.5), the box
    # edges in gold where no mask covers them
    h, w = img.shape[:2]
    assert drawn.shape[0] > h and drawn.shape[1] >= w
    panel = drawn[:h, :w].astype(int)
    only0 = exp1['masks'][0] & ~np.any(exp1['masks'][1:], axis=0) \
        if len(exp1['masks']) > 1 else exp1['masks'][0]
    red = (panel[..., 0] > panel[..., 1] + 40) & \
        (panel[..., 0] > panel[..., 2] + 40)
    assert red[only0].mean() > 0.9
    gold = (panel[..., 0] > 200) & (panel[..., 1] > 170) & \
        (panel[..., 2] < 120)  # (255, 215, 0), antialiased
    assert gold[29:32, 40:80].any(0).all()  # top edge of the prompt box
    assert not gold[29:32, 100:120].any()  # right of the box
    # second turn: the first one is history, its box comes first
    html2, _, turn2 = app.turn(img, 'Referring segmentation', 'the red '
                               'circle', wd.VisualPrompts(), [turn1])
    exp2 = ref(IMG1, 'the red circle', task='refseg',
               boxes=[[20, 30, 90, 100]],
               history=[('What is in <bbox>?', exp1['caption'])])[0]
    assert turn2.answer == exp2['caption']
    assert html2 == wd.answer_html(exp2['text'], exp2['phrases'])
    assert 'the red circle</span>' in html2


def test_points_fill_placeholders_after_boxes_when_supported():
    p = wd.add_click(clicks((0, 0), (10, 10)), 4, 5, wd.POINT_MODE)
    req = wd.build_request(IMAGE, 'chat', '<bbox> next to <bbox>?', p,
                           supports_points=True)
    assert req.boxes == [[0, 0, 10, 10]] and req.points == [[4, 5]]
    with pytest.raises(wd.DemoError, match=r'2 box\(es\) and point\(s\) '
                       'drawn but the prompt has 1'):
        wd.build_request(IMAGE, 'chat', '<bbox>?', p, supports_points=True)
    with pytest.raises(wd.DemoError, match='GCG takes no boxes'):
        wd.build_request(IMAGE, 'gcg', '', wd.add_click(
            wd.VisualPrompts(), 1, 1, wd.POINT_MODE), supports_points=True)
