"""Every source config of configs/_base_/datasets/synthetic_sources.py runs on
a freshly generated small synthetic world (every file, LLaVA-Instruct chat and
GranD included, as make_synthetic.py writes it): the full pipeline on 2
samples, then browse_dataset renders them to PNG with one colour per grounded
phrase.
"""
import bisect
import collections
import itertools
import os
import os.path as osp
import sys

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

os.environ.setdefault('HF_HUB_OFFLINE', '1')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SOURCES_CFG = osp.join(ROOT, 'configs', '_base_', 'datasets',
                       'synthetic_sources.py')
MIXED_CFG = osp.join(ROOT, 'configs', '_base_', 'datasets',
                     'mixed_synthetic_glamm.py')
TOOLS = osp.join(ROOT, 'tools', 'analysis_tools')
DEFAULT_ROOT = 'data/synthetic/'
NUM_IMAGES = 24
IMAGE_SIZE = 128

# Every source the data issue names must have a config (style suffix added).
EXPECTED = {
    'refcoco_refseg_glamm', 'refcoco_refseg_llava_g', 'refcoco_rec_llava_g',
    'flickr30k_entities_llava_g', 'gvc_llava_g', 'gvc_r_llava_g',
    'gvc_r_refcoco_llava_g', 'gcg_grandf_glamm', 'gcg_grandf_llava_g',
    'gcg_eval_glamm', 'region_caption_refcocog_glamm',
    'region_caption_vg_glamm', 'region_caption_refcocog_llava_g',
    'llava_instruct_glamm', 'llava_instruct_llava_g', 'grand_pretrain_glamm'
}


def dataset_keys(cfg):
    return sorted(k for k, v in cfg.items()
                  if isinstance(v, dict) and 'type' in v
                  and k.endswith(('_glamm', '_llava_g')))


KEYS = dataset_keys(Config.fromfile(SOURCES_CFG))


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def world(tmp_path_factory):
    from mmgrounding.datasets.synthetic import generate_world
    out = str(tmp_path_factory.mktemp('world'))
    generate_world(out, num_images=NUM_IMAGES, seed=0,
                   image_size=IMAGE_SIZE, log=lambda *a: None)
    return out


def _reroot(node, root):
    if isinstance(node, dict):
        return {k: _reroot(v, root) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_reroot(v, root) for v in node)
    if isinstance(node, str) and node.startswith(DEFAULT_ROOT):
        return osp.join(root, node[len(DEFAULT_ROOT):])
    return node


def load_cfg(path, world):
    """The config with every ``data/synthetic/`` path moved to ``world``."""
    cfg = Config.fromfile(path)
    return Config(_reroot(cfg.to_dict(), world), filename=path)


@pytest.fixture(scope='module')
def browse_dataset():
    sys.path.insert(0, TOOLS)
    try:
        import browse_dataset
    finally:
        sys.path.remove(TOOLS)
    return browse_dataset


def _colour_pixels(png, rgb, tol=6):
    diff = np.abs(png.astype(np.int32) - np.array(rgb)[None, None])
    return int((diff.max(axis=2) <= tol).sum())


# -------------------------------------------------------------------- tests
def test_every_source_has_a_config():
    assert EXPECTED <= set(KEYS), sorted(EXPECTED - set(KEYS))


@pytest.mark.parametrize('key', KEYS)
def test_source_pipeline_and_browse(key, world, browse_dataset, tmp_path):
    import matplotlib.pyplot as plt
    import mmdet.datasets  # noqa: F401

    import mmgrounding.datasets  # noqa: F401
    from mmgrounding.registry import DATASETS
    init_default_scope('mmgrounding')
    cfg = load_cfg(SOURCES_CFG, world)
    dataset_cfg = cfg[key]
    style = 'llava_g' if key.endswith('_llava_g') else 'glamm'
    seg_token, region_token = dict(
        glamm=('[SEG]', '<bbox>'), llava_g=('<seg>', '<obj>'))[style]

    dataset = DATASETS.build(dataset_cfg)
    tokenize = next(t for t in dataset.pipeline.transforms
                    if type(t).__name__ == 'TokenizeConversation')
    tok = tokenize.tokenizer
    seg_id = tok.convert_tokens_to_ids(seg_token)
    region_id = tok.convert_tokens_to_ids(region_token)
    image_id = tok.convert_tokens_to_ids('<image>')
    num_targets, shown = [], []
    for idx in range(2):
        out = dataset[idx]
        record = dataset.get_data_info(idx)
        sample = out['data_samples']
        assert out['inputs'].shape == (3, IMAGE_SIZE, IMAGE_SIZE)
        ids = sample.input_ids
        num_seg = int((ids == seg_id).sum())
        assert len(sample.gt_instances) == len(sample.metainfo['gt_phrases'])
        if dataset.test_mode:  # prompt only: the targets are the answer's
            assert num_seg == 0 and (sample.labels == -100).all()
            assert sample.metainfo['prompt'].endswith('ASSISTANT:')
        else:
            assert num_seg == len(sample.gt_instances)
            assert (sample.labels != -100).any()  # an answer is supervised
        assert int((ids == region_id).sum()) == len(sample.region_bboxes) \
            == len(record['regions'])
        assert int((ids == image_id).sum()) == cfg.num_image_tokens
        assert sample.metainfo['source'] == record['source']
        masks = sample.gt_instances.masks.to_ndarray()
        assert masks.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE)
        assert all(m.any() for m in masks)
        if style == 'llava_g' and record['regions']:
            assert len(sample.visual_prompts) == len(record['regions'])
        num_targets.append(len(sample.gt_instances))
        shown.append((out['inputs'].permute(1, 2, 0).numpy(), masks))
    if record['task'] in ('refseg', 'rec', 'gcg', 'gvc',
                          'phrase_grounding'):
        assert max(num_targets) > 0, f'{key}: no grounded phrase'

    out_dir = tmp_path / 'png'
    files = browse_dataset.browse(cfg, str(out_dir), num=2,
                                  dataset_key=key, progress=False)
    assert sorted(files) == sorted(str(p) for p in out_dir.iterdir())
    assert len(files) == 2
    for path, num, (image, masks) in zip(files, num_targets, shown):
        png = (plt.imread(path)[..., :3] * 255).round().astype(np.uint8)
        panel = png[:, :int(0.45 * png.shape[1])]  # the image panel
        assert (panel < 250).any(axis=2).mean() > 0.3, f'{path} is blank'
        assert len(np.unique(panel.reshape(-1, 3), axis=0)) >= 5, \
            f'{path}: the image panel has almost no content'
        for k in range(num):
            rgb = browse_dataset.PALETTE[k]
            # phrase text and mask box are drawn in the phrase's colour ...
            assert _colour_pixels(png, rgb) >= 20, \
                f'{path}: colour {rgb} of grounded phrase {k} not drawn'
            # ... and the mask is overlaid with it: 45 % of what is under it
            # + 55 % colour, in target order (a pixel under several masks
            # is blended with each)
            under = masks[k].astype(bool)
            pixels = image[under].astype(np.float64) / 255
            for j, m in enumerate(masks):
                col = np.array(browse_dataset.colour(j))
                inside = m.astype(bool)[under]
                pixels[inside] = 0.45 * pixels[inside] + 0.55 * col
            colours, counts = np.unique(np.round(pixels * 255), axis=0,
                                        return_counts=True)
            assert _colour_pixels(panel, colours[counts.argmax()],
                                  tol=3) >= 20, \
                f'{path}: mask {k} not overlaid in {rgb}'
        # the next palette colour is not used: colours follow the phrases
        unused = browse_dataset.PALETTE[num]
        assert _colour_pixels(png, unused) < 5, f'{path}: stray {unused}'


def test_browse_cli_names_the_missing_key(browse_dataset, tmp_path):
    with pytest.raises(KeyError, match='gvc_llava_g'):
        browse_dataset.main([
            SOURCES_CFG, '--output-dir',
            str(tmp_path), '--dataset-key', 'no_such_source'
        ])
    with pytest.raises(TypeError, match='not a dataset dict'):
        browse_dataset.main([
            SOURCES_CFG, '--output-dir',
            str(tmp_path), '--dataset-key', 'train_pipeline_glamm'
        ])


def test_mixed_config_fills_batches_by_ratio(world):
    import mmdet.datasets  # noqa: F401

    import mmgrounding.datasets  # noqa: F401
    from mmgrounding.registry import DATA_SAMPLERS, DATASETS
    init_default_scope('mmgrounding')
    cfg = load_cfg(MIXED_CFG, world)
    loader = cfg.train_dataloader
    dataset = DATASETS.build(loader.dataset)
    sampler = DATA_SAMPLERS.build(
        loader.sampler, default_args=dict(dataset=dataset))
    batch = loader.batch_size
    ratio = loader.sampler.source_ratio
    assert (batch, list(ratio)) == (32, [3, 3, 1, 1])
    indices = list(itertools.islice(iter(sampler), 2 * batch))
    for b in range(2):
        part = indices[b * batch:(b + 1) * batch]
        counts = collections.Counter(
            bisect.bisect_right(dataset.cumulative_sizes, i) for i in part)
        # by hand: a batch of 32 with ratio 3:3:1:1 holds 32 * 3 / 8 = 12
        # refseg, 12 GCG, 32 / 8 = 4 RefCOCOg and 4 VG region captions
        assert [counts[s] for s in range(len(ratio))] == [12, 12, 4, 4]
    sources = {dataset[i]['data_samples'].metainfo['source']
               for i in indices[:batch:2]}
    assert sources == {'refcoco', 'gcg_grandf', 'region_caption_refcocog',
                       'region_caption_vg'}
