import numpy as np
import pycocotools.mask as mask_utils
import pytest
from grounding_fixtures import make_record, square
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from mmgrounding.datasets.transforms import LoadGroundingAnnotations
from mmgrounding.structures import GroundingDataError


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE (column-major run lengths, starting with 0s)."""
    flat = mask.flatten(order='F')
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return dict(size=list(mask.shape), counts=counts)


def test_polygon_and_rle_decode_equal(record):
    out = LoadGroundingAnnotations()(record)
    masks = out['gt_masks']
    assert isinstance(masks, BitmapMasks)
    assert masks.masks.shape == (3, 32, 40) and masks.masks.dtype == np.uint8
    assert isinstance(out['gt_bboxes'], HorizontalBoxes)
    np.testing.assert_allclose(out['gt_bboxes'].tensor[0].numpy(),
                               [2, 2, 10, 10])
    assert out['gt_mask_valid'].all()

    poly_mask = masks.masks[0]
    assert poly_mask.sum() > 0
    compressed = mask_utils.encode(np.asfortranarray(poly_mask))
    as_str = dict(size=compressed['size'],
                  counts=compressed['counts'].decode())
    flat_polygon = square(2, 2, 10, 10)[0]
    for rle in (compressed, as_str, _uncompressed_rle(poly_mask),
                flat_polygon):
        rec = make_record()
        rec['instances'][0]['mask'] = rle
        decoded = LoadGroundingAnnotations()(rec)['gt_masks'].masks[0]
        np.testing.assert_array_equal(decoded, poly_mask)


def test_box_from_mask_when_missing(record):
    record['instances'][1].pop('bbox')
    out = LoadGroundingAnnotations()(record)
    ys, xs = np.nonzero(out['gt_masks'].masks[1])
    np.testing.assert_allclose(out['gt_bboxes'].tensor[1].numpy(),
                               [xs.min(), ys.min(), xs.max() + 1,
                                ys.max() + 1])


def test_mask_from_box(record):
    record['instances'][2]['mask'] = None
    out = LoadGroundingAnnotations(mask_from_box=True)(record)
    expected = np.zeros((32, 40), np.uint8)
    expected[14:24, 20:30] = 1
    np.testing.assert_array_equal(out['gt_masks'].masks[2], expected)

    rec = make_record()
    rec['instances'][2]['mask'] = None
    out = LoadGroundingAnnotations()(rec)
    assert out['gt_mask_valid'].tolist() == [True, True, False]
    assert out['gt_masks'].masks[2].sum() == 0


@pytest.mark.parametrize('mask, field', [
    (square(50, 2, 60, 10), 'instances[0].mask'),  # out of bounds
    (dict(size=[32, 40], counts=[32 * 40]), 'instances[0].mask'),  # empty
    (dict(size=[16, 40], counts=[16 * 40]), 'instances[0].mask'),  # size
    ([[1, 2, 3]], 'instances[0].mask'),  # too few points
])
def test_bad_masks_raise(record, mask, field):
    record['instances'][0]['mask'] = mask
    with pytest.raises(GroundingDataError) as err:
        LoadGroundingAnnotations()(record)
    assert err.value.field == field
    assert err.value.img_id == 7 and err.value.source == 'unit'


def test_bad_box_and_size_raise(record):
    record['instances'][0]['bbox'] = [10, 2, 2, 10]
    with pytest.raises(GroundingDataError, match='instances\\[0\\].bbox'):
        LoadGroundingAnnotations()(record)
    rec = make_record(ori_shape=(30, 40))
    with pytest.raises(GroundingDataError, match='height/width'):
        LoadGroundingAnnotations()(rec)
