"""GLaMM-7B configs that start from a converted official release use the
release's settings (issue 17): the GCG training mix of the official script
and the official region-box frame.
"""
from pathlib import Path

from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
GCG = ROOT / 'configs/glamm/glamm_vicuna7b_clipl336_sam-h_10e_grandf-gcg.py'


def test_gcg_mix_is_the_official_script():
    """scripts/finetune_glamm_gcg.sh: Semantic_Segm||RefCoco_GCG||PSG_GCG||
    Flickr_GCG||GranDf_GCG at 3,9,9,9,1; without Semantic_Segm (no loader)
    the GCG sources keep 9:9:9:1, in that order."""
    cfg = Config.fromfile(str(GCG))
    loader = cfg.train_dataloader
    assert loader.sampler.type == 'RandomSourceSampler'
    assert [d['format'] for d in loader.dataset.datasets] == [
        'refcocog', 'psg', 'flickr', 'grandf']
    assert list(loader.sampler.source_ratio) == [9, 9, 9, 1]
    assert 'Semantic_Segm' in GCG.read_text()  # the omission is explained


RELEASE_CONFIGS = sorted((ROOT / 'configs/glamm').glob('glamm_vicuna7b_*.py'))
# a non-square image (W 640, H 480) and one region box, xyxy pixels
W, H = 640, 480
BOX = [64., 120., 320., 360.]
# official (eval/region_captioning/infer.py:82-92, layers.py:302), by hand:
# x * 336 / 640 = 0.525 x, y * 336 / 480 = 0.7 y -> [33.6, 84, 168, 252];
# / 336 -> [0.1, 0.25, 0.5, 0.75]; x 224 -> RoI [22.4, 56, 112, 168]
OFFICIAL_VIEW = [33.6, 84., 168., 252.]
OFFICIAL_NORM = [0.1, 0.25, 0.5, 0.75]
OFFICIAL_ROI = [22.4, 56., 112., 168.]
# our 'view' option, by hand: shortest side 480 -> 336 (x 0.7), width 448,
# centre crop from x = 56: [44.8 - 56, 84, 224 - 56, 252], x1 clamped to 0;
# RoI at the true position (no 224 frame)
VIEW_VIEW = [0., 84., 168., 252.]


def _release_model_cfg():
    cfgs = [Config.fromfile(str(p)) for p in RELEASE_CONFIGS]
    assert len(cfgs) >= 4 and all(c.get('load_from') for c in cfgs)
    model = cfgs[0].model
    for cfg in cfgs[1:]:  # one region frame for every release config
        assert cfg.model.data_preprocessor == model.data_preprocessor
        assert cfg.model.region_encoder == model.region_encoder
    return model


def _rois(pp_cfg, enc_cfg):
    """Original-pixel BOX -> (CLIP-view box, RoI, normalised box) through
    the preprocessor's box mapping and the region encoder (tiny widths)."""
    import torch

    from mmgrounding.registry import MODELS
    from mmgrounding.utils import register_all_modules
    register_all_modules()
    pp = MODELS.build(dict(pp_cfg, grounding_size=None))
    view = pp.boxes_to_clip_view(torch.tensor([BOX]), H, W)
    enc = MODELS.build(dict(enc_cfg, in_channels=32, out_channels=16,
                            query_channels=16, pos_hidden_channels=8,
                            num_levels=1, num_fuse=1, roi_size=2,
                            norm_cfg=dict(type='GN', num_groups=4))).eval()
    seen = []
    enc.roi_align.register_forward_pre_hook(
        lambda module, args: seen.append(args))
    grid = enc_cfg['image_size'] // 14  # CLIP-L/14 tokens per side
    with torch.no_grad():
        enc([torch.randn(1, grid * grid, 32)], [view])
    _, rois, norm = seen[0]
    return view[0].tolist(), rois[0, 1:].tolist(), norm[0].tolist()


def test_release_configs_use_the_official_region_frame():
    import pytest
    model = _release_model_cfg()
    assert model.data_preprocessor.region_box_mode == 'stretch'
    assert model.region_encoder.roi_box_scale == 224
    view, roi, norm = _rois(model.data_preprocessor, model.region_encoder)
    assert view == pytest.approx(OFFICIAL_VIEW)
    assert norm == pytest.approx(OFFICIAL_NORM)
    assert roi == pytest.approx(OFFICIAL_ROI)


def test_view_frame_stays_an_option():
    import pytest
    model = _release_model_cfg()
    view, roi, _ = _rois(dict(model.data_preprocessor, region_box_mode='view'),
                         dict(model.region_encoder, roi_box_scale=None))
    assert view == pytest.approx(VIEW_VIEW)
    assert roi == pytest.approx(VIEW_VIEW)
