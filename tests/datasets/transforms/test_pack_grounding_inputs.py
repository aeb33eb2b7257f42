import cv2
import numpy as np
import pytest
import torch
from grounding_fixtures import make_record
from mmcv.transforms import Compose
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks

from mmgrounding.datasets.transforms import PackGroundingInputs
from mmgrounding.registry import TRANSFORMS
from mmgrounding.structures import GroundingDataError


def _pipeline(tokenizer_path, style='llava_g'):
    tokens = dict(glamm=('[SEG]', '<bbox>'), llava_g=('<seg>', '<obj>'))
    return Compose([
        TRANSFORMS.build(t) for t in [
            dict(type='LoadImageFromFile'),
            dict(type='LoadGroundingAnnotations'),
            dict(type='SampleVisualPrompts', seed=1),
            dict(type='FormatGroundedConversation', style=style),
            dict(type='TokenizeConversation',
                 tokenizer=dict(pretrained_model_name_or_path=tokenizer_path),
                 num_image_tokens=4,
                 grounding_token=tokens[style][0],
                 region_token=tokens[style][1]),
            dict(type='PackGroundingInputs'),
        ]
    ])


@pytest.fixture
def image_record(tmp_path):
    img = np.zeros((32, 40, 3), np.uint8)
    img[2:10, 2:10] = (0, 0, 255)  # BGR red
    img[4:24, 20:30] = (255, 0, 0)  # BGR blue
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, img)
    record = make_record(img_path=path)
    record['conversations'][0]['text'] = '<image>\nDescribe the image <obj> .'
    record['regions'] = [dict(instance_id=1, bbox=[20, 4, 30, 14])]
    return record


def test_pack_produces_contract_fields(tokenizer_path, image_record):
    out = _pipeline(tokenizer_path)(image_record)
    inputs, sample = out['inputs'], out['data_samples']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 32, 40)
    assert inputs[:, 5, 5].tolist() == [255, 0, 0]  # RGB red
    assert inputs[:, 20, 25].tolist() == [0, 0, 255]  # RGB blue
    assert isinstance(sample, DetDataSample)
    assert sample.input_ids.dtype == sample.labels.dtype == torch.long
    assert sample.input_ids.shape == sample.labels.shape

    gt = sample.gt_instances
    assert isinstance(gt.masks, BitmapMasks) and len(gt) == 2
    assert gt.bboxes.shape == (2, 4) and gt.bboxes.dtype == torch.float32
    torch.testing.assert_close(gt.bboxes,
                               torch.tensor([[2., 2., 10., 10.],
                                             [20., 4., 30., 24.]]))
    assert gt.labels.tolist() == [0, 0]
    # per-instance targets for set-prediction heads (target_kind='instances')
    objects = sample.gt_objects
    assert isinstance(objects.masks, BitmapMasks) and len(objects) == 3
    torch.testing.assert_close(
        objects.bboxes,
        torch.tensor([[2., 2., 10., 10.], [20., 4., 30., 14.],
                      [20., 14., 30., 24.]]))
    assert objects.labels.tolist() == [0, 0, 0]
    assert objects.mask_valid.tolist() == [True, True, True]
    assert sample.grounding_instance_ids == [[0], [1, 2]]
    # the union mask of token 1 is the union of its instances' masks
    union = objects.masks.masks[[1, 2]].any(0)
    assert np.array_equal(gt.masks.masks[1].astype(bool), union)
    torch.testing.assert_close(sample.region_bboxes,
                               torch.tensor([[20., 4., 30., 14.]]))
    assert len(sample.visual_prompts) == 1
    assert sample.visual_prompts[0]['instance_id'] == 1

    meta = sample.metainfo
    assert meta['img_id'] == 7 and meta['img_path'] == image_record[
        'img_path']
    assert meta['ori_shape'] == meta['img_shape'] == (32, 40)
    assert meta['task'] == 'gcg' and meta['source'] == 'unit'
    assert meta['gt_phrases'] == ['A red circle', 'a blue square']
    assert meta['gt_captions'] == ['A red circle next to a blue square.']
    assert meta['prompt'].endswith('<obj> . ASSISTANT:')


def test_pack_without_regions_and_missing_keys(tokenizer_path, image_record):
    image_record['conversations'][0]['text'] = '<image>\nDescribe.'
    image_record['regions'] = []
    out = _pipeline(tokenizer_path, style='glamm')(image_record)
    sample = out['data_samples']
    assert sample.region_bboxes.shape == (0, 4)
    assert sample.visual_prompts == []
    with pytest.raises(GroundingDataError, match='input_ids'):
        PackGroundingInputs()(dict(img=np.zeros((4, 4, 3), np.uint8),
                                   img_id=1))


def test_mask_boxes_hand_computed():
    from mmgrounding.datasets.transforms.packing import _mask_boxes
    masks = np.zeros((3, 6, 8), dtype=np.uint8)
    masks[0, 1:3, 2:5] = 1  # rows 1-2, cols 2-4
    masks[1, 5, 7] = 1  # the bottom-right pixel only
    # masks[2] empty -> zeros
    boxes = _mask_boxes(BitmapMasks(masks, 6, 8))
    assert boxes.tolist() == [[2., 1., 5., 3.], [7., 5., 8., 6.],
                              [0., 0., 0., 0.]]
    assert _mask_boxes(BitmapMasks(np.zeros((0, 6, 8)), 6, 8)).shape == (0, 4)
