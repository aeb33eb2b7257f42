"""The visualizer draws gt and prediction panels with phrase colours."""
import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

from mmgrounding.visualization import PALETTE, GroundingVisualizer


def _sample(h=40, w=60):
    sample = DetDataSample(metainfo=dict(
        gt_phrases=['red circle'], gt_captions=['A red circle.']))
    masks = np.zeros((1, h, w), dtype=np.uint8)
    masks[0, 5:15, 10:30] = 1
    sample.gt_instances = InstanceData(masks=BitmapMasks(masks, h, w))
    sample.pred_instances = InstanceData(
        masks=torch.from_numpy(masks.astype(bool)), scores=torch.ones(1))
    sample.pred_phrases = ['red circle']
    sample.pred_text = '<p> red circle </p> [SEG]'
    return sample


def test_add_datasample_writes_both_panels(tmp_path):
    vis = GroundingVisualizer(name='vis_test_gv')
    image = np.full((40, 60, 3), 200, np.uint8)
    out = tmp_path / 'vis.png'
    vis.add_datasample('x', image, _sample(), out_file=str(out))
    import mmcv
    drawn = mmcv.imread(str(out))[..., ::-1]
    assert drawn.shape[0] > 40 and drawn.shape[1] >= 2 * 60
    # the masked region of the gt panel is tinted towards the first colour
    patch = drawn[8:12, 15:25].reshape(-1, 3).mean(0)
    assert abs(patch[0] - (200 + PALETTE[0][0]) / 2) < 20
    # outside the mask the image is untouched
    assert np.allclose(drawn[30:35, 45:55], 200, atol=1)
