"""projects/detect_then_describe: selection, box matching, metric, dataset,
split tool and the model built from a real mmdet detector config + a
checkpoint saved here, with the tiny GLaMM config (random, 24-image world)."""
import json
import os
from pathlib import Path

import mmengine
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.structures import InstanceData

from mmgrounding.datasets.synthetic import generate_world
from mmgrounding.evaluation.metrics import RegionCaptionMetric
from mmgrounding.registry import DATASETS, MODELS
from mmgrounding.structures import GroundingDataError
from projects.detect_then_describe.detect_then_describe import (
    DenseRegionCaptionMetric, DetectThenDescribe, match_boxes,
    select_detections)
from projects.detect_then_describe.detect_then_describe.metrics import \
    recalled
from projects.detect_then_describe.tools.split_instances import \
    split_instances

os.environ.setdefault('HF_HUB_OFFLINE', '1')
ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / 'projects' / 'detect_then_describe'
DET_CFG = PROJECT / 'configs' / 'rtmdet_tiny-w025_synthetic.py'
LMM_CFG = PROJECT / 'configs' / 'glamm_llama-tiny_regcap_synthetic.py'
DTD_CFG = PROJECT / 'configs' / (
    'detect-then-describe_rtmdet-tiny_glamm-tiny_synthetic.py')


# ------------------------------------------------------------ selection
def _instances(scores):
    n = len(scores)
    return InstanceData(
        bboxes=torch.arange(4 * n, dtype=torch.float32).reshape(n, 4),
        scores=torch.tensor(scores),
        labels=torch.arange(n))


def test_select_detections_threshold_and_topk():
    inst = _instances([0.2, 0.9, 0.5, 0.9, 0.1])
    assert select_detections(inst, 0.3, 2).labels.tolist() == [1, 3]
    # inclusive threshold, no limit, ties keep detector order
    assert select_detections(inst, 0.5, -1).labels.tolist() == [1, 3, 2]
    assert select_detections(inst, 0.95, 5).labels.tolist() == []
    kept = select_detections(inst, 0.0, 3)
    assert kept.bboxes.tolist() == [[4., 5., 6., 7.], [12., 13., 14., 15.],
                                    [8., 9., 10., 11.]]
    with pytest.raises(ValueError, match='topk'):
        select_detections(inst, 0.3, 0)


# ------------------------------------------------------------- matching
GT = torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.]])
# IoU with GT0: 50/100 = 0.5 (kept: inclusive); 81/119 = 0.68;
# with GT1: 25/100 = 0.25 (below); none.
PRED = torch.tensor([[0., 0., 10., 5.], [1., 1., 11., 11.],
                     [20., 20., 25., 25.], [50., 50., 60., 60.]])


def test_match_boxes_and_recall_hand_computed():
    assert match_boxes(PRED, GT, 0.5).tolist() == [0, 0, -1, -1]
    assert match_boxes(PRED, GT, 0.2).tolist() == [0, 0, 1, -1]
    assert match_boxes(PRED, GT, 0.6).tolist() == [-1, 0, -1, -1]
    assert recalled(PRED, GT, 0.5).tolist() == [True, False]
    assert recalled(PRED[:0], GT).tolist() == [False, False]
    assert match_boxes(PRED, GT[:0]).tolist() == [-1, -1, -1, -1]


def _sample(img_id, pred, captions, gt, refs):
    s = DetDataSample(metainfo=dict(img_id=img_id, gt_region_captions=refs))
    s.pred_instances = InstanceData(bboxes=pred,
                                    scores=torch.ones(len(pred)),
                                    labels=torch.zeros(len(pred)).long())
    s.gt_instances = InstanceData(bboxes=gt)
    s.pred_region_captions = captions
    return s.to_dict()


def test_dense_metric_counts_and_matched_captions():
    refs = [['small red circle', 'red circle left of the square'],
            ['large blue square']]
    caps = ['small red circle', 'red circle', 'blue square', 'nothing']
    # at IoU 0.2 (see PRED): boxes 0, 1 -> GT0, box 2 -> GT1, box 3 unmatched
    metric = DenseRegionCaptionMetric(iou_thr=0.2, caption_metrics=['CIDEr'])
    metric.process({}, [
        _sample(1, PRED, caps, GT, refs),
        # second image: one GT, no detection
        _sample(2, PRED[:0], [], GT[1:], [['green triangle']]),
    ])
    out = metric.compute_metrics(metric.results)
    assert out['num_gt'] == 3 and out['num_pred'] == 4
    assert out['num_matched'] == 3
    assert out['box_recall'] == pytest.approx(200 / 3)
    assert out['box_precision'] == pytest.approx(75.0)
    # matched captions against their own GT object's references
    ref_metric = RegionCaptionMetric(caption_metrics=['CIDEr'])
    expected = ref_metric.compute_metrics([
        dict(id=0, caption='small red circle', references=refs[0]),
        dict(id=1, caption='red circle', references=refs[0]),
        dict(id=2, caption='blue square', references=refs[1]),
    ])
    assert out['CIDEr'] == pytest.approx(expected['CIDEr'])
    assert out['CIDEr'] > 0
    # swapping two captions across objects must lower the score
    metric.results[0]['matched'][0]['caption'] = 'blue square'
    metric.results[0]['matched'][2]['caption'] = 'small red circle'
    assert metric.compute_metrics(metric.results)['CIDEr'] < out['CIDEr']


def test_dense_metric_rejects_misaligned_captions():
    metric = DenseRegionCaptionMetric(caption_metrics=['CIDEr'])
    with pytest.raises(ValueError, match='img_id=7.*3 captions for 4 boxes'):
        metric.process({}, [_sample(7, PRED, ['a', 'b', 'c'], GT,
                                    [['x'], ['y']])])
    with pytest.raises(ValueError, match='1 gt_region_captions for 2'):
        metric.process({}, [_sample(8, PRED, list('abcd'), GT, [['x']])])
    with pytest.raises(ValueError, match='iou_thr'):
        DenseRegionCaptionMetric(iou_thr=0.0)


# ---------------------------------------------------------------- world
@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('dtd_world')
    generate_world(str(root / 'data' / 'synthetic'), num_images=24, seed=1)
    return root


def test_split_instances_by_world_ranges(world, tmp_path):
    data = world / 'data' / 'synthetic'
    paths = split_instances(str(data))
    ranges = json.loads((data / 'world.json').read_text())['splits']
    full = json.loads((data / 'annotations' / 'instances.json').read_text())
    total = 0
    for split, (first, last) in ranges.items():
        part = json.loads(Path(paths[split]).read_text())
        ids = sorted(img['id'] for img in part['images'])
        assert ids == list(range(first, last + 1))
        n_ann = sum(first <= a['image_id'] <= last
                    for a in full['annotations'])
        assert len(part['annotations']) == n_ann
        total += n_ann
    assert total == len(full['annotations'])
    # an annotation naming a missing image is an error, not dropped
    bad = tmp_path / 'bad'
    (bad / 'annotations').mkdir(parents=True)
    (bad / 'world.json').write_text(json.dumps(dict(splits=ranges)))
    full['annotations'][3]['image_id'] = 999
    (bad / 'annotations' / 'instances.json').write_text(json.dumps(full))
    with pytest.raises(GroundingDataError, match="instances.json.*999"
                       ".*image_id"):
        split_instances(str(bad))


def test_dense_dataset_groups_regions_per_image(world, tmp_path):
    data = world / 'data' / 'synthetic'
    ann = 'annotations/region_caption/finetune_refcocog_val.json'
    init_default_scope('mmgrounding')
    ds = DATASETS.build(
        dict(type='DenseRegionCaptionDataset', data_root=str(data),
             ann_file=ann, data_prefix=dict(img_path='images/'),
             test_mode=True, pipeline=[]))
    raw = json.loads((data / ann).read_text())
    # expected from the file itself: per real image, its distinct objects
    # and every sentence of each object
    entries = {e['id']: e for e in raw['images']}
    by_image = {}
    for a in raw['annotations']:
        image = entries[a['image_id']]
        objs = by_image.setdefault(image['original_id'], {})
        objs.setdefault(a['original_id'], []).append(image['caption'])
    assert len(ds) == len(by_image)
    for i in range(len(ds)):
        rec = ds.get_data_info(i)
        objs = by_image[rec['img_id']]
        assert len(rec['instances']) == len(objs)
        assert [inst['ann_id'] for inst in rec['instances']] == list(objs)
        assert rec['gt_region_captions'] == list(objs.values())
        assert all(inst['bbox_label'] == 0 for inst in rec['instances'])
    # one object with two different boxes is an error naming file, id, field
    raw['annotations'][1]['bbox'] = [0, 0, 5, 5]
    first = entries[raw['annotations'][1]['image_id']]
    same = [a for a in raw['annotations']
            if a['original_id'] == raw['annotations'][1]['original_id']]
    assert len(same) >= 2, 'fixture: an object with two sentences'
    bad = tmp_path / 'bad_val.json'
    bad.write_text(json.dumps(raw))
    with pytest.raises(GroundingDataError) as err:
        DATASETS.build(
            dict(type='DenseRegionCaptionDataset', data_root=str(data),
                 ann_file=str(bad), data_prefix=dict(img_path='images/'),
                 test_mode=True, pipeline=[]))
    assert 'bad_val.json' in str(err.value)
    assert err.value.img_id == first['original_id']
    assert err.value.field == 'bbox'


# ---------------------------------------------------------------- model
@pytest.fixture(scope='module')
def model_and_ckpt(world, tmp_path_factory):
    from mmdet.apis import init_detector
    out = tmp_path_factory.mktemp('dtd_ckpt')
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(world)
        init_default_scope('mmgrounding')
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope('mmdet'):
            det = init_detector(str(DET_CFG), None, device='cpu')
        with torch.no_grad():
            # a recognisable value to find again after loading
            det.bbox_head.rtm_reg[0].bias.fill_(0.125)
        ckpt = str(out / 'det.pth')
        torch.save(dict(state_dict=det.state_dict(),
                        meta=dict(dataset_meta=dict(
                            classes=('circle', 'square', 'triangle')))),
                   ckpt)
        lmm_cfg = Config.fromfile(str(LMM_CFG))
        lmm_cfg.model.generation_cfg.max_new_tokens = 3
        scope_before = DefaultScope.get_current_instance().scope_name
        with pytest.warns(UserWarning, match='randomly initialized'):
            model = MODELS.build(
                dict(type='DetectThenDescribe',
                     detector=dict(config=str(DET_CFG), checkpoint=ckpt),
                     lmm=dict(config=lmm_cfg, checkpoint=None),
                     score_thr=0.0, topk=2))
        assert DefaultScope.get_current_instance().scope_name == \
            scope_before == 'mmgrounding'
        yield model, world


def test_model_builds_frozen_detector_from_checkpoint(model_and_ckpt):
    model, _ = model_and_ckpt
    assert type(model.detector).__name__ == 'RTMDet'
    assert torch.all(model.detector.bbox_head.rtm_reg[0].bias == 0.125)
    assert model.detector.dataset_meta['classes'] == ('circle', 'square',
                                                      'triangle')
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.detector.training and not model.lmm.training
    with pytest.raises(RuntimeError, match='only "predict"'):
        model(None, None, mode='loss')
    with pytest.raises(ValueError, match='<bbox>'):
        DetectThenDescribe(detector={}, lmm={}, question='Describe it.')
    with pytest.raises(ValueError, match='topk'):
        DetectThenDescribe(detector={}, lmm={}, topk=0)


def test_predict_feeds_detector_boxes_to_lmm(model_and_ckpt, monkeypatch):
    import mmcv
    model, world = model_and_ckpt
    monkeypatch.chdir(world)
    seen = []
    lmm_predict = model.lmm.predict

    def spy(inputs, data_samples):
        seen.extend(s.region_bboxes.clone() for s in data_samples)
        return lmm_predict(inputs, data_samples)

    monkeypatch.setattr(model.lmm, 'predict', spy)
    img = mmcv.imread(str(world / 'data/synthetic/images/000000000001.png'))
    chw = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    # the detector alone, as mmdet runs it, for the expected boxes
    from mmdet.apis import inference_detector
    with DefaultScope.overwrite_default_scope('mmdet'):
        ref = inference_detector(model.detector, img).pred_instances
    top2 = ref.scores.argsort(descending=True)[:2]
    sample = DetDataSample(metainfo=dict(img_id=1))
    out = model.predict([chw], [sample])[0]
    assert torch.allclose(out.pred_instances.bboxes, ref.bboxes[top2])
    assert torch.allclose(out.pred_instances.scores, ref.scores[top2])
    assert len(out.pred_region_captions) == len(out.pred_region_texts) == 2
    assert all(isinstance(c, str) for c in out.pred_region_captions)
    # one <bbox> prompt per detection, the box in original pixels
    assert len(seen) == 2
    got = torch.cat(seen)
    assert torch.allclose(got, ref.bboxes[top2].float(), atol=1e-4)


def test_project_config_parses_with_custom_imports():
    cfg = Config.fromfile(str(DTD_CFG))
    assert cfg.custom_imports.imports == [
        'projects.detect_then_describe.detect_then_describe'
    ]
    assert cfg.model.type == 'DetectThenDescribe'
    det = Config.fromfile(str(DET_CFG))
    assert det.model.backbone.init_cfg is None  # nothing to download
    assert det.model.bbox_head.num_classes == 3
    # the weights-only checkpoint hook resolves from the detector's scope
    from mmengine.registry import HOOKS
    import mmgrounding  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmdet'):
        hook = HOOKS.build(det.custom_hooks[0])
    assert type(hook).__name__ == 'WeightsOnlyCheckpointHook'
