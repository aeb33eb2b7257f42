"""GroundingDataPreprocessor: views, padding, masks and region boxes."""
import os

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from PIL import Image
from transformers.models.clip.image_processing_pil_clip import \
    CLIPImageProcessorPil

from mmgrounding.models.data_preprocessors import (SAM_MEAN, SAM_STD,
                                                   GroundingDataPreprocessor)
from mmgrounding.models.vision_encoders import CLIP_MEAN, CLIP_STD
from mmgrounding.registry import MODELS
from mmgrounding.structures import GroundingDataError

os.environ.setdefault('HF_HUB_OFFLINE', '1')
torch.set_num_threads(1)


def _sample(length, with_labels=True, boxes=None, name='a.png'):
    sample = DetDataSample(metainfo=dict(img_path=name, img_id=name))
    sample.input_ids = torch.arange(1, length + 1)
    if with_labels:
        sample.labels = torch.arange(1, length + 1) + 100
    if boxes is not None:
        sample.region_bboxes = torch.tensor(boxes, dtype=torch.float32)
    return sample


def _pp(**kwargs):
    cfg = dict(
        type='GroundingDataPreprocessor',
        clip_size=32,
        grounding_size=64,
        pad_token_id=0)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _constant(h, w, value=100):
    return torch.full((3, h, w), value, dtype=torch.uint8)


def test_constant_image_views_and_sizes():
    out = _pp()(dict(inputs=[_constant(40, 80), _constant(50, 30)],
                     data_samples=[_sample(3), _sample(2)]))
    inputs = out['inputs']
    assert inputs['clip_pixels'].shape == (2, 3, 32, 32)
    assert inputs['grounding_pixels'].shape == (2, 3, 64, 64)
    clip_val = (100 / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(
        inputs['clip_pixels'],
        clip_val.view(1, 3, 1, 1).expand(2, 3, 32, 32))
    assert inputs['grounding_sizes'].tolist() == [[32, 64], [64, 38]]
    sam_val = (100 - torch.tensor(SAM_MEAN)) / torch.tensor(SAM_STD)
    g0, g1 = inputs['grounding_pixels']
    torch.testing.assert_close(g0[:, :32], sam_val.view(3, 1, 1).expand(
        3, 32, 64))
    assert g0[:, 32:].abs().sum() == 0  # bottom padding
    torch.testing.assert_close(g1[:, :, :38], sam_val.view(3, 1, 1).expand(
        3, 64, 38))
    assert g1[:, :, 38:].abs().sum() == 0  # right padding
    for sample in out['data_samples']:
        assert sample.batch_input_shape == (64, 64)
        assert sample.pad_shape == (64, 64)


def test_right_padding_in_training_left_in_prediction():
    pp = _pp(pad_token_id=9)
    data = dict(inputs=[_constant(8, 8)] * 2,
                data_samples=[_sample(4), _sample(2)])
    train = pp(data, training=True)['inputs']
    assert train['input_ids'].tolist() == [[1, 2, 3, 4], [1, 2, 9, 9]]
    assert train['attention_mask'].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert train['labels'].tolist() == [[101, 102, 103, 104],
                                        [101, 102, -100, -100]]
    test = pp(data, training=False)['inputs']
    assert test['input_ids'].tolist() == [[1, 2, 3, 4], [9, 9, 1, 2]]
    assert test['attention_mask'].tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert test['labels'].tolist()[1] == [-100, -100, 101, 102]
    override = pp(data, training=True, padding_side='left')['inputs']
    assert override['input_ids'].tolist()[1] == [9, 9, 1, 2]
    with pytest.raises(ValueError, match='padding side'):
        pp(data, padding_side='middle')


def test_prediction_samples_without_labels():
    out = _pp()(dict(inputs=[_constant(8, 8)] * 2,
                     data_samples=[_sample(3, False), _sample(1, False)]))
    assert out['inputs']['labels'] is None
    with pytest.raises(ValueError, match='some data samples have `labels`'):
        _pp()(dict(inputs=[_constant(8, 8)] * 2,
                   data_samples=[_sample(3), _sample(1, False)]))


def test_region_boxes_follow_the_clip_view():
    boxes = [[0, 0, 80, 40], [20, 10, 60, 30]]
    data = dict(inputs=[_constant(40, 80)], data_samples=[_sample(
        2, boxes=boxes)])
    # crop: 40x80 -> 32x64, centre crop removes 16 px on the left
    crop = _pp()(data)['data_samples'][0].region_bboxes_clip
    torch.testing.assert_close(
        crop, torch.tensor([[0., 0., 32., 32.], [0., 8., 32., 24.]]))
    resize = _pp(clip_mode='resize')(data)['data_samples'][0]
    torch.testing.assert_close(
        resize.region_bboxes_clip,
        torch.tensor([[0., 0., 32., 32.], [8., 8., 24., 24.]]))
    stretch = _pp(region_box_mode='stretch')(data)['data_samples'][0]
    torch.testing.assert_close(stretch.region_bboxes_clip,
                               resize.region_bboxes_clip)
    none = _pp()(dict(inputs=[_constant(8, 8)], data_samples=[_sample(1)]))
    assert 'region_bboxes_clip' not in none['data_samples'][0]


def test_region_box_outside_the_crop_is_an_error():
    """Regression (issue 10, item 9): a box entirely outside the CLIP centre
    crop used to clamp silently to a zero-width box."""
    # 40x80 -> 32x64, the crop drops 16 px on the left: x < 20 is invisible
    data = dict(inputs=[_constant(40, 80)],
                data_samples=[_sample(2, boxes=[[0, 0, 15, 40]],
                                      name='left.png')])
    with pytest.raises(GroundingDataError,
                       match=r"left.png.*region_bboxes.*no area inside the "
                       'clip view') as err:
        _pp()(data)
    assert err.value.field == 'region_bboxes'
    # without the crop (or stretched, as GLaMM's region data) it is visible
    for kwargs in (dict(clip_mode='resize'), dict(region_box_mode='stretch')):
        out = _pp(**kwargs)(data)['data_samples'][0].region_bboxes_clip
        torch.testing.assert_close(out, torch.tensor([[0., 0., 6., 32.]]))


def test_visual_prompts_reach_every_prompt_view():
    sample = _sample(2, boxes=[[20, 10, 60, 30]])
    mask = torch.zeros(40, 80)
    mask[10:30, 20:60] = 1
    sample.visual_prompts = [
        dict(type='click', points=torch.tensor([[50., 20.]])),
        dict(type='box', box=torch.tensor([20., 10., 60., 30.])),
        dict(type='mark', mask=mask),
    ]
    pp = _pp(prompt_views=('clip', 'grounding'))
    out = pp(dict(inputs=[_constant(40, 80)],
                  data_samples=[sample]))['data_samples'][0]
    # CLIP: x 0.8 - 16, y 0.8; grounding (64, longest side): x, y 0.8
    torch.testing.assert_close(out.region_bboxes_clip,
                               torch.tensor([[0., 8., 32., 24.]]))
    torch.testing.assert_close(out.region_bboxes_grounding,
                               torch.tensor([[16., 8., 48., 24.]]))
    clip, ground = out.visual_prompts_clip, out.visual_prompts_grounding
    torch.testing.assert_close(clip[0]['points'], torch.tensor([[24., 16.]]))
    torch.testing.assert_close(ground[0]['points'], torch.tensor([[40.,
                                                                   16.]]))
    torch.testing.assert_close(ground[1]['box'],
                               torch.tensor([16., 8., 48., 24.]))
    assert clip[2]['mask'].shape == (32, 32)
    assert ground[2]['mask'].shape == (64, 64)
    # rows 10:30 -> 8:24, cols 20:60 -> 16:48 (grounding) / 0:32 (clip)
    assert ground[2]['mask'][8:24, 16:48].all()
    assert ground[2]['mask'].sum() == 16 * 32
    assert clip[2]['mask'][8:24, 0:32].all() and clip[2]['mask'].sum() == 512
    assert clip[0]['type'] == 'click'
    # a click outside the crop is an error naming the sample and prompt
    sample.visual_prompts = [dict(type='click',
                                  points=torch.tensor([[5., 20.]]))]
    with pytest.raises(GroundingDataError, match=r'visual_prompts\[0\]'):
        _pp()(dict(inputs=[_constant(40, 80)], data_samples=[sample]))
    with pytest.raises(ValueError, match='prompt_views'):
        _pp(prompt_views=('sam', ))


def test_clip_view_matches_the_clip_processor():
    yy, xx = torch.meshgrid(
        torch.arange(60.), torch.arange(100.), indexing='ij')
    img = torch.stack([(xx * 2.5) % 256, (yy * 4) % 256,
                       (xx + yy) % 256]).to(torch.uint8)
    proc = CLIPImageProcessorPil(
        size={'shortest_edge': 32}, crop_size={'height': 32, 'width': 32})
    ref = proc(images=img.permute(1, 2, 0).numpy(),
               return_tensors='pt')['pixel_values'][0]
    ours = _pp()(dict(inputs=[img], data_samples=[_sample(1)]))
    diff = (ours['inputs']['clip_pixels'][0] - ref).abs()
    assert diff.mean() < 0.01 and diff.max() < 0.05  # ~ 1 grey level


def test_grounding_view_matches_pil_resize_longest_side():
    yy, xx = torch.meshgrid(
        torch.arange(50.), torch.arange(70.), indexing='ij')
    img = torch.stack([(xx * 3) % 256, (yy * 5) % 256,
                       (xx * yy) % 256]).to(torch.uint8)
    pil = Image.fromarray(img.permute(1, 2, 0).numpy())
    # SAM ResizeLongestSide: 50x70 -> int(50 * 64 / 70 + 0.5) = 46 x 64
    ref = torch.from_numpy(
        np.array(pil.resize((64, 46), Image.BILINEAR))).permute(2, 0,
                                                                 1).float()
    ref = (ref - torch.tensor(SAM_MEAN).view(3, 1, 1)) / torch.tensor(
        SAM_STD).view(3, 1, 1)
    out = _pp()(dict(inputs=[img], data_samples=[_sample(1)]))['inputs']
    assert out['grounding_sizes'].tolist() == [[46, 64]]
    diff = (out['grounding_pixels'][0, :, :46] - ref).abs()
    assert diff.mean() < 0.02 and diff.max() < 0.1


def test_bad_inputs_raise_with_the_sample_name():
    with pytest.raises(ValueError, match='bad.png'):
        _pp()(dict(inputs=[torch.zeros(1, 8, 8, dtype=torch.uint8)],
                   data_samples=[_sample(1, name='bad.png')]))
    sample = DetDataSample(metainfo=dict(img_path='x.png'))
    with pytest.raises(KeyError, match='x.png'):
        _pp()(dict(inputs=[_constant(8, 8)], data_samples=[sample]))
    with pytest.raises(ValueError, match='2 data samples'):
        _pp()(dict(inputs=[_constant(8, 8)],
                   data_samples=[_sample(1), _sample(1)]))
    with pytest.raises(ValueError, match='clip_mode'):
        GroundingDataPreprocessor(clip_mode='pad')


def test_stacked_tensor_input_and_no_grounding_view():
    pp = _pp(grounding_size=None)
    out = pp(dict(inputs=torch.zeros(2, 3, 16, 16, dtype=torch.uint8),
                  data_samples=[_sample(1), _sample(1)]))
    assert out['inputs']['clip_pixels'].shape == (2, 3, 32, 32)
    assert out['inputs']['grounding_pixels'] is None
