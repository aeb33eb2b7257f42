"""Two training iterations and a short test of the tiny LLaVA-G configs.

The real configs run through mmengine's ``Runner`` on a small synthetic
world written into a temp dir (the configs' relative ``data/synthetic``
paths resolve there via chdir): train, save, test with the REC + RES
metrics, the GVC view with the Grounding-Bench metric, and the Flickr30K
view (given answers, Recall@k).
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmgrounding.datasets.synthetic import generate_world

ROOT = Path(__file__).resolve().parents[2]
STEM = 'configs/llava_grounding/' \
    'llava-g_llama-tiny_clip-tiny_openseed-tiny_600it_synthetic'
QUICK = [
    'train_cfg.max_iters=2', 'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'test_dataloader.num_workers=0', 'test_dataloader.batch_size=2',
    'test_dataloader.dataset.indices=2', 'default_hooks.logger.interval=1',
    'default_hooks.checkpoint.interval=2',
    'model.generation_cfg.max_new_tokens=8'
]


@pytest.fixture(scope='module')
def world_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny_world_llava_g')
    generate_world(str(root / 'data' / 'synthetic'), num_images=24, seed=1)
    return root


def _quick_cfg(path, work_dir, extra=()):
    cfg = Config.fromfile(str(ROOT / path))
    options = {}
    for item in list(QUICK) + list(extra):  # as --cfg-options parses them
        key, value = item.split('=', 1)
        options[key] = DictAction._parse_iterable(value)
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.mark.slow  # train + 3 test views (~1 min): keeps test-fast < 5 min
def test_two_iterations_then_rec_res_and_gvc_tests(world_dir, tmp_path,
                                                   monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.chdir(world_dir)
    cfg = _quick_cfg(STEM + '.py', tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    ckpt = tmp_path / 'work' / 'iter_2.pth'
    assert ckpt.exists()
    metrics = runner.test()
    for key in ('rec/Acc@1', 'refseg/gIoU', 'refseg/cIoU'):
        assert any(k.endswith(key.split('/')[1]) for k in metrics), metrics
    assert all(0.0 <= v <= 100.0 for v in metrics.values()), metrics

    gvc = _quick_cfg(STEM + '-gvc-test.py', tmp_path / 'gvc',
                     [f'load_from={ckpt}'])
    gvc_metrics = Runner.from_cfg(gvc).test()
    assert any('F1' in k for k in gvc_metrics), gvc_metrics

    flickr = _quick_cfg(STEM + '-flickr-test.py', tmp_path / 'flickr',
                        [f'load_from={ckpt}'])
    flickr_metrics = Runner.from_cfg(flickr).test()
    for k in (1, 5, 10):
        value = flickr_metrics[f'flickr30k/R@{k}']
        assert 0.0 <= value <= 100.0, flickr_metrics
    # more boxes per phrase can only find more of them
    assert flickr_metrics['flickr30k/R@1'] <= flickr_metrics[
        'flickr30k/R@5'] <= flickr_metrics['flickr30k/R@10']
