import copy

import numpy as np
import pytest
from grounding_fixtures import make_record

from mmgrounding.datasets.transforms import (LoadGroundingAnnotations,
                                             SampleVisualPrompts)
from mmgrounding.structures import GroundingDataError


def _record_with_regions(n=12):
    record = make_record()
    # an L-shaped (non-convex) instance to test scribbles
    record['instances'].append(
        dict(bbox=[2, 14, 16, 30],
             mask=[[2, 14, 6, 14, 6, 26, 16, 26, 16, 30, 2, 30]]))
    record['regions'] = [
        dict(instance_id=k % 4,
             bbox=record['instances'][k % 4]['bbox']) for k in range(n)
    ]
    return LoadGroundingAnnotations()(record)


def test_prompts_are_deterministic_and_inside_masks():
    results = _record_with_regions()
    sampler = SampleVisualPrompts(seed=3)
    first = sampler(copy.deepcopy(results))['visual_prompts']
    second = sampler(copy.deepcopy(results))['visual_prompts']
    assert [p['type'] for p in first] == [p['type'] for p in second]
    for a, b in zip(first, second):
        for key in ('points', 'box', 'mask'):
            if key in a:
                np.testing.assert_array_equal(a[key], b[key])
    assert len({p['type'] for p in first}) >= 3  # the mix is used

    masks = results['gt_masks'].masks.astype(bool)
    for k, prompt in enumerate(first):
        inst = prompt['instance_id']
        assert inst == results['regions'][k]['instance_id']
        mask = masks[inst]
        if 'points' in prompt:
            pts = prompt['points']
            assert pts.dtype == np.float32 and pts.shape[1] == 2
            xs, ys = pts[:, 0].astype(int), pts[:, 1].astype(int)
            assert mask[ys, xs].all()
        if prompt['type'] == 'box':
            np.testing.assert_allclose(prompt['box'],
                                       results['regions'][k]['bbox'])
        if prompt['type'] == 'scribble':
            assert prompt['mask'].shape == mask.shape
            assert prompt['mask'].any()
            assert not (prompt['mask'].astype(bool) & ~mask).any()
        if prompt['type'] == 'mark':
            np.testing.assert_array_equal(prompt['mask'].astype(bool), mask)

    other = SampleVisualPrompts(seed=4)(copy.deepcopy(results))
    assert [p['type'] for p in other['visual_prompts']] != [
        p['type'] for p in first
    ] or any(
        not np.array_equal(a.get('points', 0), b.get('points', 0))
        for a, b in zip(first, other['visual_prompts']))


def test_box_only_for_glamm_and_jitter():
    results = _record_with_regions(4)
    out = SampleVisualPrompts(prompt_types=dict(box=1.0))(results)
    assert [p['type'] for p in out['visual_prompts']] == ['box'] * 4
    jittered = SampleVisualPrompts(prompt_types=dict(box=1.0),
                                   box_jitter=0.1)(_record_with_regions(4))
    for p in jittered['visual_prompts']:
        box = p['box']
        assert box.dtype == np.float32
        assert (box[2:] > box[:2]).all()
        assert box.min() >= 0 and box[2] <= 40 and box[3] <= 32


def test_region_without_mask_uses_box():
    record = make_record()
    record['instances'][0]['mask'] = None
    record['regions'] = [dict(instance_id=0, bbox=[2, 2, 10, 10])]
    results = LoadGroundingAnnotations()(record)
    out = SampleVisualPrompts(prompt_types=dict(mark=1.0))(results)
    expected = np.zeros((32, 40), np.float32)
    expected[2:10, 2:10] = 1
    np.testing.assert_array_equal(out['visual_prompts'][0]['mask'], expected)


def test_bad_config_and_region():
    with pytest.raises(ValueError):
        SampleVisualPrompts(prompt_types=dict(lasso=1.0))
    with pytest.raises(ValueError):
        SampleVisualPrompts(prompt_types=dict(box=0.0))
    results = _record_with_regions(1)
    results['regions'][0]['instance_id'] = 9
    with pytest.raises(GroundingDataError, match='regions\\[0\\]'):
        SampleVisualPrompts()(results)
