"""METEOR/CIDEr (Java, started once for this module) against pycocoevalcap's
official ``COCOEvalCap`` pipeline, plus hand-checked extremes."""
import contextlib
import io

import pytest
from pycocotools.coco import COCO

from mmgrounding.evaluation import (GCGMetric, RegionCaptionMetric,
                                    get_meteor, score_captions)

REFS = {
    11: ['a man riding a brown horse on a beach', 'a person on a horse'],
    12: ['two dogs playing with a red ball'],
    13: ['a bowl of fruit on a wooden table'],
    14: ['a white bus parked near the street'],
}
HYPS = {
    11: 'a man rides a horse on the sand.',
    12: 'dogs playing with a ball',
    13: 'zebra skyscraper volcano',
    14: '',
}


def official_scores(refs, hyps, monkeypatch):
    """COCOEvalCap as the GLaMM scripts run it (SPICE stubbed: it needs
    downloaded models; the shared METEOR process is reused)."""
    import pycocoevalcap.eval as cap_eval

    class NoSpice:
        def method(self):
            return 'SPICE'

        def compute_score(self, gts, res):
            return 0.0, [0.0] * len(gts)

    monkeypatch.setattr(cap_eval, 'Spice', NoSpice)
    monkeypatch.setattr(cap_eval, 'Meteor', get_meteor)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dict(
            images=[dict(id=k) for k in refs],
            annotations=[
                dict(id=i, image_id=k, caption=c)
                for i, (k, c) in enumerate(
                    (k, c) for k, cs in refs.items() for c in cs)
            ])
        gt.createIndex()
        res = gt.loadRes([dict(image_id=k, caption=c)
                          for k, c in hyps.items()])
        ev = cap_eval.COCOEvalCap(gt, res)
        ev.params['image_id'] = res.getImgIds()
        ev.evaluate()
    return ev.eval


def test_region_caption_matches_official(monkeypatch):
    metric = RegionCaptionMetric()
    samples = [
        dict(img_id=k, gt_captions=REFS[k], pred_caption=HYPS[k])
        for k in REFS
    ]
    metric.process({}, samples)
    ours = metric.compute_metrics(metric.results)
    ref = official_scores(REFS, HYPS, monkeypatch)
    assert ours['METEOR'] == pytest.approx(100 * ref['METEOR'], abs=1e-9)
    assert ours['CIDEr'] == pytest.approx(100 * ref['CIDEr'], abs=1e-9)

    # per-item extremes: unrelated words and the empty caption score 0
    _, per = score_captions(REFS, HYPS)
    assert per['METEOR'][2] == 0.0 and per['CIDEr'][2] == 0.0
    assert per['METEOR'][3] == 0.0 and per['CIDEr'][3] == 0.0
    assert per['METEOR'][0] > 0.3
    with pytest.raises(ValueError, match='same keys'):
        score_captions(REFS, {11: 'a'})


def test_gcg_caption_part_uses_all_references():
    metric = GCGMetric(caption_metrics=('CIDEr', ), text_encoder=None)
    metric.process({}, [
        dict(img_id=k, ori_shape=(2, 2), gt_captions=REFS[k],
             pred_caption=HYPS[k]) for k in REFS
    ])
    res = metric.compute_metrics(metric.results)
    corpus, _ = score_captions(REFS, HYPS, ('CIDEr', ))
    assert res['CIDEr'] == pytest.approx(100 * corpus['CIDEr'])
    assert res['recall'] == 0.0 and res['mIoU'] == 0.0
    with pytest.raises(ValueError, match='img_id=1 has no `gt_captions`'):
        metric.compute_metrics([dict(metric.results[0], img_id=1,
                                     references=[])])
