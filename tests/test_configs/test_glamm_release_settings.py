"""GLaMM-7B configs that start from a converted official release use the
release's settings (issue 17): the GCG training mix of the official script.
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
