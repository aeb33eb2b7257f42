"""Offline inputs: eval_metric.py reads --out pickles without running code;
official GCG predictions without ``pred_masks`` are refused."""
import json
import os
import pickle

import numpy as np
import pytest
import torch
from eval_test_utils import box_mask
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmengine.evaluator import DumpResults, Evaluator
from mmengine.structures import InstanceData
from test_official_gcg_and_tools import load_tool, write_official

from mmgrounding.evaluation import (UnsafePickleError, load_official_gcg,
                                    load_prediction_pickle)

H = W = 4
A = box_mask(H, W, 0, 0, 2, 2)  # 4 px
B = box_mask(H, W, 0, 0, 2, 4)  # 8 px, contains A


def data_sample(idx, gt_mask, pred_mask, pred_box):
    sample = DetDataSample(
        metainfo=dict(img_id=f'{idx:012d}', sample_idx=idx,
                      img_path=f'{idx}.png', ori_shape=(H, W),
                      gt_phrases=['the thing'], score=np.float32(0.5)))
    gt = InstanceData()
    gt.masks = BitmapMasks(gt_mask[None].astype(np.uint8), H, W)
    gt.bboxes = HorizontalBoxes(torch.tensor([[0., 0., 2., 2.]]))
    sample.gt_instances = gt
    pred = InstanceData()
    pred.masks = torch.from_numpy(pred_mask[None])
    pred.bboxes = torch.tensor([pred_box])
    pred.scores = torch.ones(1)
    sample.pred_instances = pred
    sample.input_ids = torch.arange(5)
    return sample


def dump_like_tools_test(path):
    """What `tools/test.py --out` does: DumpResults in the evaluator."""
    samples = [
        data_sample(0, A, A, [0., 0., 2., 2.]),  # I 4 U 4, box hit
        data_sample(1, A, B, [2., 2., 4., 4.]),  # I 4 U 8, box miss
    ]
    evaluator = Evaluator([DumpResults(out_file_path=str(path))])
    evaluator.process(data_samples=samples, data_batch=dict())
    evaluator.evaluate(len(samples))
    assert path.exists()


def config(tmp_path):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("default_scope = 'mmgrounding'\n"
                   "test_evaluator = [dict(type='RefSegGIoUMetric'), "
                   "dict(type='RECAccMetric')]\n")
    return str(cfg)


def test_real_dump_loads_and_scores(tmp_path):
    pkl = tmp_path / 'preds.pkl'
    dump_like_tools_test(pkl)
    safe = load_prediction_pickle(str(pkl))
    with open(pkl, 'rb') as f:
        plain = pickle.load(f)  # our own trusted file, for comparison
    assert len(safe) == len(plain) == 2
    for s, p in zip(safe, plain):
        assert (s['img_id'], s['sample_idx']) == (p['img_id'],
                                                  p['sample_idx'])
        assert isinstance(s['gt_instances']['masks'], BitmapMasks)
        assert isinstance(s['gt_instances']['bboxes'], HorizontalBoxes)
        assert torch.equal(s['pred_instances']['masks'],
                           p['pred_instances']['masks'])
        assert s['score'] == np.float32(0.5)
    metrics = load_tool('eval_metric').main([config(tmp_path), str(pkl)])
    # hand-computed: cIoU (4 + 4) / (4 + 8); gIoU mean of 4/4 and 4/8;
    # boxes: one of two with IoU >= 0.5
    assert metrics['refseg/cIoU'] == pytest.approx(100 * 8 / 12)
    assert metrics['refseg/gIoU'] == pytest.approx(
        100 * (4 / (4 + 1e-5) + 4 / (8 + 1e-5)) / (2 + 1e-5))
    assert metrics['rec/Acc@1'] == pytest.approx(50.0)


class Payload:
    """Pickles as a call of os.system that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class NestedPayload:
    """Hides the payload in a tensor-storage blob (torch.storage's nested
    ``torch.load``)."""

    def __init__(self, marker):
        self.blob = pickle.dumps(Payload(marker), protocol=2)

    def __reduce__(self):
        return torch.storage._load_from_bytes, (self.blob, )


@pytest.mark.parametrize('make', [Payload, NestedPayload])
def test_malicious_pickle_is_refused_and_does_not_run(tmp_path, make):
    marker = tmp_path / 'pwned'
    pkl = tmp_path / 'evil.pkl'
    with open(pkl, 'wb') as f:
        pickle.dump([dict(img_id=1, evil=make(marker))], f, protocol=2)
    with pytest.raises(pickle.UnpicklingError) as err:
        load_tool('eval_metric').main([config(tmp_path), str(pkl)])
    if make is Payload:
        assert isinstance(err.value, UnsafePickleError)
        assert str(pkl) in str(err.value)
        assert 'system' in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize('module, name', [('builtins', 'eval'),
                                          ('builtins', 'getattr'),
                                          ('subprocess', 'Popen'),
                                          ('mmdet.structures', 'torch'),
                                          ('torch', 'load')])
def test_other_globals_are_refused(tmp_path, module, name):
    # GLOBAL opcode, then an empty tuple and REDUCE: a call of module.name
    data = b'\x80\x02c' + f'{module}\n{name}\n'.encode() + b')R.'
    pkl = tmp_path / 'g.pkl'
    pkl.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=f'{module}.{name}'):
        load_prediction_pickle(str(pkl))


def test_non_pickle_path_is_refused(tmp_path):
    preds = tmp_path / 'preds.json'
    preds.write_text('[]')
    with pytest.raises(ValueError, match='preds.json.*pkl'):
        load_tool('eval_metric').main([config(tmp_path), str(preds)])


def test_official_prediction_without_pred_masks_raises(tmp_path):
    pred_dir, gt_dir = write_official(tmp_path, nested=False)
    path = pred_dir / 'sa_1.json'
    record = json.load(open(path))
    del record['pred_masks']
    json.dump(record, open(path, 'w'))
    with pytest.raises(KeyError, match=r'sa_1\.json.*pred_masks'):
        load_official_gcg(str(pred_dir), str(gt_dir), 'val')
    # an explicit empty list is a prediction without masks, and scores
    record['pred_masks'] = []
    json.dump(record, open(path, 'w'))
    records = load_official_gcg(str(pred_dir), str(gt_dir), 'val')
    assert records[1]['img_id'] == 'sa_1' and records[1]['pred_rles'] == []
