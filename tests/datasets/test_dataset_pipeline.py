"""Every loader's records run through the grounding transforms (both model
styles) and the browse / benchmark tools run on them."""
import os.path as osp
import sys

import pytest

from mmgrounding.datasets import (Flickr30kEntitiesDataset, GCGDataset,
                                  GranDPretrainDataset, GVCDataset,
                                  LLaVAInstructDataset,
                                  RefCOCOGroundingDataset,
                                  RegionCaptionDataset)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(ROOT, 'tests', 'data')
IMAGES = osp.join(DATA, 'images')
STYLES = dict(
    glamm=dict(grounding_token='[SEG]', region_token='<bbox>'),
    llava_g=dict(grounding_token='<seg>', region_token='<obj>'))


@pytest.fixture(scope='module')
def tokenizer_dir(tmp_path_factory):
    from mmgrounding.testing.tokenizer import build_tiny_tokenizer
    path = str(tmp_path_factory.mktemp('tok'))
    build_tiny_tokenizer(path)
    return path


def pipeline(style, tok):
    return [
        dict(type='LoadImageFromFile'),
        dict(type='LoadGroundingAnnotations', mask_from_box=True),
        dict(type='FormatGroundedConversation', style=style),
        dict(type='TokenizeConversation',
             tokenizer=dict(pretrained_model_name_or_path=tok),
             num_image_tokens=4, **STYLES[style]),
        dict(type='PackGroundingInputs'),
    ]


def datasets(pipe):
    prefix = dict(img_path=IMAGES)
    common = dict(data_prefix=prefix, pipeline=pipe)
    yield RefCOCOGroundingDataset(
        data_root=DATA, ann_file='coco/instances.json',
        split_file='refcoco/refs(unc).p', **common)
    yield Flickr30kEntitiesDataset(data_root=osp.join(DATA, 'flickr30k'),
                                   split='train', **common)
    yield GVCDataset(data_root=DATA, ann_file='gvc/grounded_visual_chat_data'
                     '.json', instances_file='coco/instances.json', **common)
    yield GVCDataset(data_root=DATA, ann_file='gvc/llava_instruct_150k_'
                     'visual_prompt.json',
                     instances_file='coco/instances.json', **common)
    for fmt, split in (('grandf', 'train'), ('refcocog', 'train'),
                       ('flickr', 'train'), ('eval', 'val')):
        yield GCGDataset(data_root=osp.join(DATA, 'gcg'), format=fmt,
                         split=split, **common)
    yield RegionCaptionDataset(data_root=osp.join(DATA, 'region_caption'),
                               format='vg', split='train', **common)
    yield LLaVAInstructDataset(data_root=osp.join(DATA, 'llava_instruct'),
                               ann_file='llava_instruct_150k.json', **common)
    yield GranDPretrainDataset(data_root=osp.join(DATA, 'grand'),
                               ann_file='annotations', **common)


@pytest.mark.parametrize('style', ['glamm', 'llava_g'])
def test_records_pack_in_both_styles(style, tokenizer_dir):
    import mmgrounding.datasets.transforms  # noqa: F401
    from mmengine.registry import init_default_scope
    init_default_scope('mmgrounding')
    seen = set()
    for ds in datasets(pipeline(style, tokenizer_dir)):
        for i in range(len(ds)):
            record = ds.get_data_info(i)
            out = ds[i]
            sample = out['data_samples']
            grounded = [p for p in record['phrases'] if p['instance_ids']]
            assert len(sample.gt_instances) == len(grounded), record['source']
            assert sample.metainfo['gt_phrases'] == [
                p['text'] for p in sorted(grounded, key=lambda p: (
                    p['turn'], p['start']))]
            assert sample.region_bboxes.shape == (len(record['regions']), 4)
            assert tuple(out['inputs'].shape) == (3, 32, 32)
            seen.add(record['task'])
    assert seen == {'refseg', 'phrase_grounding', 'gvc', 'gvc_r', 'gcg',
                    'region_caption', 'chat'}


def test_browse_and_benchmark_tools(tmp_path, tokenizer_dir, monkeypatch,
                                    capsys):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f"""
default_scope = 'mmgrounding'
pipeline = {pipeline('glamm', tokenizer_dir)!r}
train_dataloader = dict(dataset=dict(
    type='ConcatDataset', datasets=[
        dict(type='GCGDataset', data_root={osp.join(DATA, 'gcg')!r},
             format='grandf', split='train',
             data_prefix=dict(img_path={IMAGES!r}), pipeline=pipeline),
        dict(type='RegionCaptionDataset',
             data_root={osp.join(DATA, 'region_caption')!r},
             format='vg', split='train',
             data_prefix=dict(img_path={IMAGES!r}), pipeline=pipeline)]))
""")
    tools = osp.join(ROOT, 'tools', 'analysis_tools')
    monkeypatch.syspath_prepend(tools)
    import benchmark_pipeline
    import browse_dataset
    out_dir = tmp_path / 'vis'
    monkeypatch.setattr(sys, 'argv', [
        'browse_dataset.py', str(cfg), '--output-dir', str(out_dir),
        '--num', '3'])
    browse_dataset.main()
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == ['00000_000000000001.png', '00001_000000000002.png',
                     '00002_1.png']
    assert all((out_dir / f).stat().st_size > 5000 for f in files)
    monkeypatch.setattr(sys, 'argv', [
        'benchmark_pipeline.py', str(cfg), '--num', '4', '--warmup', '1'])
    capsys.readouterr()
    benchmark_pipeline.main()
    table = capsys.readouterr().out
    assert 'GCGDataset' in table and '3:TokenizeConversation' in table
    assert 'whole pipeline' in table
