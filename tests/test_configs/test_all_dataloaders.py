"""Every dataloader of every config under configs/ builds and yields.

For each config (globbed: a new one is covered automatically) and each of
its ``train_dataloader`` / ``val_dataloader`` / ``test_dataloader``, the
dataset paths are pointed at the official-format fixtures of tests/data
and every tokenizer at a tiny local one; everything else (sampler, batch
size, pipeline, image-token count, context length) stays as configured.
Two batches are drawn under a SIGALRM timeout, so a sampler that spins
forever (mmdet's MultiSourceSampler with a 0-slot source) fails the test
instead of hanging it. The 7B pipelines run for real: only the tokenizer
changes (same special tokens, added by the pipeline as for Vicuna); the
336 px CLIP / 1024 px SAM views are made later by the data preprocessor.
"""
import copy
import signal
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmgrounding.testing import build_tiny_tokenizer

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / 'tests' / 'data'
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
TIMEOUT_S = 20

#: (dataset type, format, train?) -> fixture files, relative to tests/data.
#: `format` is None for types without one. Add a row for a new source.
FIXTURES = {
    ('GCGDataset', 'grandf', True): dict(
        ann_file='gcg/GranDf_HA_GCG_train.json'),
    # OpenPSG-GCG has the GranDf file shape
    ('GCGDataset', 'psg', True): dict(
        ann_file='gcg/GranDf_HA_GCG_train.json'),
    ('GCGDataset', 'refcocog', True): dict(
        ann_file='gcg/RefCOCOg_GCG_train.json'),
    ('GCGDataset', 'flickr', True): dict(
        ann_file='gcg/flickr_mergedGT_GCG_train.json'),
    ('GCGDataset', 'eval', False): dict(
        ann_file='gcg/val_gcg_coco_caption_gt.json',
        mask_file='gcg/val_gcg_coco_mask_gt.json'),
    ('RefCOCOGroundingDataset', None, True): dict(
        ann_file='coco/instances.json', split_file='refcoco/refs(unc).p'),
    ('RefCOCOGroundingDataset', None, False): dict(
        ann_file='coco/instances.json', split_file='refcoco/refs(unc).p'),
    ('RegionCaptionDataset', 'refcocog', True): dict(
        ann_file='region_caption/mdetr_annotations/'
        'finetune_refcocog_train.json'),
    ('RegionCaptionDataset', 'refcocog', False): dict(
        ann_file='region_caption/mdetr_annotations/'
        'finetune_refcocog_val_captions.json'),
    ('RegionCaptionDataset', 'vg', True): dict(
        ann_file='region_caption/train.json'),
    ('RegionCaptionDataset', 'vg', False): dict(
        ann_file='region_caption/test_caption.json'),
    ('GVCDataset', None, True): dict(
        ann_file='gvc/grounded_visual_chat_data.json',
        instances_file='coco/instances.json'),
    ('GVCDataset', None, False): dict(
        ann_file='gvc/grounded_visual_chat_data.json',
        instances_file='coco/instances.json'),
    ('Flickr30kEntitiesDataset', None, True): dict(
        ann_file='flickr30k/final_flickr_separateGT_train.json'),
    # test view (the Flickr30K val file has the train file's shape)
    ('Flickr30kEntitiesDataset', None, False): dict(
        ann_file='flickr30k/final_flickr_separateGT_train.json'),
    ('LLaVAInstructDataset', None, True): dict(
        ann_file='llava_instruct/llava_instruct_150k.json'),
    # the mmseg dataset inside is replaced whole
    ('SemanticSegGroundingDataset', None, True): dict(
        seg_dataset=dict(type='SyntheticSemSegDataset',
                         data_root=str(DATA) + '/',
                         ann_file='semseg/train.txt',
                         data_prefix=dict(img_path='images/',
                                          seg_map_path='semseg/labels/'))),
    ('SemanticSegGroundingDataset', None, False): dict(
        seg_dataset=dict(type='SyntheticSemSegDataset',
                         data_root=str(DATA) + '/',
                         ann_file='semseg/val.txt',
                         data_prefix=dict(img_path='images/',
                                          seg_map_path='semseg/labels/'))),
}
FORMAT_TYPES = {'GCGDataset', 'RegionCaptionDataset'}
INFINITE_SAMPLERS = {'InfiniteSampler', 'MultiSourceSampler',
                     'GroupMultiSourceSampler', 'RandomSourceSampler'}


def _cases():
    cases = []
    for path in sorted((ROOT / 'configs').rglob('*.py')):
        cfg = Config.fromfile(str(path))
        for key in LOADERS:
            if cfg.get(key) is not None:
                cases.append(
                    pytest.param(path, key,
                                 id=f'{path.relative_to(ROOT)}:{key}'))
    return cases


CASES = _cases()


@pytest.fixture(scope='module')
def tokenizers(tmp_path_factory):
    """A tokenizer lacking the model tokens (the 7B pipelines add them, as
    for Vicuna; with Llama's ``▁`` piece for their official tokenization)
    and one that has them (the synthetic world's kind)."""
    bare = tmp_path_factory.mktemp('tok_bare')
    full = tmp_path_factory.mktemp('tok_full')
    build_tiny_tokenizer(str(bare), include_model_tokens=False,
                         spiece_underline=True)
    build_tiny_tokenizer(str(full), include_model_tokens=True)
    return dict(bare=str(bare), full=str(full))


def _point_at_fixtures(ds: dict, where: str) -> None:
    """Swap a leaf dataset's files for the fixtures, in place."""
    kind = ds['type'].split('.')[-1]
    fmt = ds.get('format', 'grandf' if kind == 'GCGDataset' else 'refcocog')
    key = (kind, fmt if kind in FORMAT_TYPES else None,
           not ds.get('test_mode', False))
    if key not in FIXTURES:
        raise KeyError(f'{where}: no fixture for {key}; add one to FIXTURES '
                       'in tests/test_configs/test_all_dataloaders.py')
    ds.update(FIXTURES[key])
    if ds.get('one_per_question'):  # region questions need <obj> turns
        ds['ann_file'] = 'gvc/llava_instruct_150k_visual_prompt.json'
    ds['data_root'] = str(DATA) + '/'
    ds['data_prefix'] = dict(img_path='images/')


def _swap_tokenizers(pipeline: list, tokenizers: dict,
                     image_tokens: set) -> None:
    for transform in pipeline:
        if 'tokenizer' in transform:
            image_tokens.add(transform['num_image_tokens'])
            tok = dict(transform['tokenizer'])
            kind = 'bare' if transform.get('special_tokens') else 'full'
            tok['pretrained_model_name_or_path'] = tokenizers[kind]
            transform['tokenizer'] = tok


def _override(ds: dict, tokenizers: dict, where: str,
              image_tokens: set) -> None:
    """Fixtures and tiny tokenizers in every leaf dataset; collects the
    pipelines' ``num_image_tokens`` into ``image_tokens``."""
    if 'datasets' in ds:  # ConcatDataset and friends
        for i, sub in enumerate(ds['datasets']):
            _override(sub, tokenizers, f'{where}.datasets[{i}]',
                      image_tokens)
        return
    if 'dataset' in ds:  # RepeatDataset, ClassBalancedDataset
        _override(ds['dataset'], tokenizers, f'{where}.dataset',
                  image_tokens)
        return
    _point_at_fixtures(ds, where)
    _swap_tokenizers(ds.get('pipeline', []), tokenizers, image_tokens)


def _longest_run(ids) -> int:
    best = run = 1
    for a, b in zip(ids[:-1], ids[1:]):
        run = run + 1 if a == b else 1
        best = max(best, run)
    return best


class _Timeout(Exception):
    pass


def _draw(loader, num_batches: int, where: str) -> list:
    def alarm(signum, frame):
        raise _Timeout(f'{where}: no {num_batches} batches within '
                       f'{TIMEOUT_S} s (a sampler loops forever?)')

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIMEOUT_S)
    try:
        batches = []
        for batch in loader:
            batches.append(batch)
            if len(batches) == num_batches:
                break
        return batches
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_every_config_with_dataloaders_is_covered():
    names = {p.values[0].name for p in CASES}
    assert 'glamm_vicuna7b_clipl336_sam-h_10e_grandf-gcg.py' in names
    assert len(CASES) >= 12


@pytest.mark.parametrize('path, key', CASES)
def test_dataloader_yields_two_batches(path, key, tokenizers):
    init_default_scope('mmgrounding')
    cfg = Config.fromfile(str(path))
    loader_cfg = copy.deepcopy(cfg[key].to_dict())
    where = f'{path.name}:{key}'
    image_tokens = set()
    _override(loader_cfg['dataset'], tokenizers, f'{where}.dataset',
              image_tokens)
    loader_cfg.update(num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    batch_size = loader_cfg['batch_size']
    size = len(loader.dataset)
    assert size > 0, where
    if type(loader.sampler).__name__ in INFINITE_SAMPLERS:
        expect = [batch_size, batch_size]
    else:  # a finite pass (DefaultSampler): two batches where it has them
        n = len(loader.sampler)
        expect = [k for k in (min(batch_size, n),
                              min(batch_size, n - batch_size)) if k > 0]
    batches = _draw(loader, 2, where)
    assert [len(b['data_samples']) for b in batches] == expect, where
    seen = []
    for batch in batches:
        assert len(batch['inputs']) == len(batch['data_samples'])
        for img, sample in zip(batch['inputs'], batch['data_samples']):
            assert img.ndim == 3 and img.shape[0] == 3, where
            ids = sample.input_ids
            assert ids.ndim == 1 and len(ids) > 0, where
            # the <image> token expanded to the configured feature count
            # (576 for the 7B CLIP-L/14-336 recipes)
            assert _longest_run(ids.tolist()) in image_tokens, where
            # each sample names its dataset index (metric bookkeeping)
            assert 0 <= sample.sample_idx < size, where
            seen.append(int(sample.sample_idx))
    if key != 'train_dataloader':  # DefaultSampler(shuffle=False)
        assert seen == list(range(len(seen))), (where, seen)
