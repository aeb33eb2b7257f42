"""Bad input in every official format, for every source.

Each defect class is built from the official-shape fixtures under
``tests/data`` (copied to a tmp dir and edited there) and must raise
:class:`GroundingDataError` whose message names the annotation file's base
name, the record id exactly as written in the file (its ``repr``: the
string ``'000000000001'`` is not the number ``1``) and the field.
"""
import json
import os.path as osp
import pickle
import shutil

import pytest
from mmcv.transforms import LoadImageFromFile

from mmgrounding.datasets import (Flickr30kEntitiesDataset, GCGDataset,
                                  GranDPretrainDataset, GVCDataset,
                                  LLaVAInstructDataset,
                                  RefCOCOGroundingDataset,
                                  RegionCaptionDataset)
from mmgrounding.datasets import base_grounding
from mmgrounding.datasets.transforms import LoadGroundingAnnotations
from mmgrounding.structures.errors import GroundingDataError

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
#: an RLE of a 32x32 image whose run lengths (5, 10) cover 15 pixels, not
#: 1024 (pycocotools would decode it without complaint)
BAD_RLE = {'size': [32, 32], 'counts': '5:'}


class Source:
    """One official format: how to build it and where its records live."""

    def __init__(self, name, cls, main, cfg, image_field, top_level):
        self.name, self.cls, self.main = name, cls, main
        self.cfg, self.image_field, self.top_level = cfg, image_field, \
            top_level

    def build(self, root, **kwargs):
        cfg = dict(data_root=str(root),
                   data_prefix=dict(img_path=str(root / 'images')))
        cfg.update(self.cfg)
        cfg.update(kwargs)
        return self.cls(**cfg)

    def __repr__(self):
        return self.name


SOURCES = {
    s.name: s
    for s in [
        Source('refcoco', RefCOCOGroundingDataset, 'coco/instances.json',
               dict(ann_file='coco/instances.json',
                    split_file='refcoco/refs(unc).p', split='train'),
               'file_name', '[]'),
        Source('flickr30k', Flickr30kEntitiesDataset,
               'flickr30k/final_flickr_separateGT_train.json',
               dict(ann_file='flickr30k/final_flickr_separateGT_train.json',
                    split='train'), 'file_name', '[]'),
        Source('gvc', GVCDataset, 'gvc/grounded_visual_chat_data.json',
               dict(ann_file='gvc/grounded_visual_chat_data.json',
                    instances_file='coco/instances.json'), 'image', '{}'),
        Source('gcg_grandf', GCGDataset, 'gcg/GranDf_HA_GCG_train.json',
               dict(ann_file='gcg/GranDf_HA_GCG_train.json', format='grandf',
                    split='train'), 'file_name', '{}'),
        Source('gcg_refcocog', GCGDataset, 'gcg/RefCOCOg_GCG_train.json',
               dict(ann_file='gcg/RefCOCOg_GCG_train.json',
                    format='refcocog', split='train'), 'img_file_name',
               '{}'),
        Source('gcg_flickr', GCGDataset,
               'gcg/flickr_mergedGT_GCG_train.json',
               dict(ann_file='gcg/flickr_mergedGT_GCG_train.json',
                    format='flickr', split='train'), 'file_name', '[]'),
        Source('gcg_eval', GCGDataset, 'gcg/val_gcg_coco_caption_gt.json',
               dict(ann_file='gcg/val_gcg_coco_caption_gt.json',
                    mask_file='gcg/val_gcg_coco_mask_gt.json', format='eval',
                    split='val'), 'file_name', '[]'),
        Source('region_caption', RegionCaptionDataset,
               'region_caption/train.json',
               dict(ann_file='region_caption/train.json', format='vg',
                    split='train'), 'file_name', '[]'),
        Source('llava_instruct', LLaVAInstructDataset,
               'llava_instruct/llava_instruct_150k.json',
               dict(ann_file='llava_instruct/llava_instruct_150k.json'),
               'image', '{}'),
        Source('grand', GranDPretrainDataset,
               'grand/annotations/000000000001.json',
               dict(ann_file='grand/annotations'), '(image key)', '[]'),
    ]
}


@pytest.fixture
def root(tmp_path):
    """A private copy of the fixtures: tmp/data/{coco,gcg,...,images}."""
    dst = tmp_path / 'data'
    shutil.copytree(DATA, dst,
                    ignore=shutil.ignore_patterns('*.py', 'configs'))
    return dst


def edit(root, rel, fn, dup=None):
    """Apply ``fn`` to the JSON file ``rel``; ``dup=(placeholder, key)``
    renames the placeholder key in the text, so that ``key`` occurs twice
    in one JSON object (``json.dumps`` cannot write that)."""
    path = root / rel
    data = json.loads(path.read_text())
    fn(data)
    text = json.dumps(data)
    if dup is not None:
        assert f'"{dup[0]}"' in text
        text = text.replace(f'"{dup[0]}"', json.dumps(dup[1]))
    path.write_text(text)


def assert_names(err, file, record, field):
    """The message names the file's base name, the record id as written and
    the field."""
    msg = str(err)
    assert isinstance(err, GroundingDataError), msg
    assert f"file='{file}'" in msg, msg
    assert f'record={record!r}' in msg, msg
    assert field in msg, msg


def expect(src, root, file, record, field, **kwargs):
    with pytest.raises(GroundingDataError) as info:
        src.build(root, **kwargs)
    assert_names(info.value, file, record, field)
    return info.value


# --------------------------------------------------------------------------
# file-level defects
@pytest.mark.parametrize('src', SOURCES.values(), ids=repr)
@pytest.mark.parametrize('defect', ['truncated', 'top_level', 'empty'])
def test_file_level_defect_names_the_file(root, src, defect):
    path = root / src.main
    text = path.read_text()
    path.write_text({
        'truncated': text[:len(text) // 2],
        'top_level': src.top_level,
        'empty': ''
    }[defect])
    with pytest.raises(GroundingDataError) as info:
        src.build(root)
    msg = str(info.value)
    assert f"file='{osp.basename(src.main)}'" in msg and 'expected' in msg


def test_refs_pickle_of_the_wrong_shape(root):
    src = SOURCES['refcoco']
    path = root / 'refcoco' / 'refs(unc).p'
    path.write_bytes(pickle.dumps({'refs': []}))
    with pytest.raises(GroundingDataError, match="file='refs\\(unc\\).p'.*"
                       'expected a list of refs'):
        src.build(root)
    path.write_bytes(b'not a pickle')
    with pytest.raises(GroundingDataError, match='cannot unpickle'):
        src.build(root)


# --------------------------------------------------------------------------
# a malformed field of one record: (file, record as written, field)
def _bad_field(name, root):
    cases = {
        'refcoco': ('coco/instances.json',
                    lambda d: d['annotations'][0].update(bbox='oops'),
                    'instances.json', 11, "field='bbox'"),
        'flickr30k': ('flickr30k/final_flickr_separateGT_train.json',
                      lambda d: d['annotations'][3].update(
                          tokens_positive=[[0, 'x']]),
                      'final_flickr_separateGT_train.json', 3,
                      "field='tokens_positive'"),
        'gvc': ('gvc/grounded_visual_chat_data.json',
                lambda d: d[0].update(gd_ls='11'),
                'grounded_visual_chat_data.json', '000000000001',
                "field='gd_ls'"),
        'gcg_grandf': ('gcg/GranDf_HA_GCG_train.json',
                       lambda d: d[0]['groundings']['A red square'].update(
                           token_positives=[0]),
                       'GranDf_HA_GCG_train.json', '000000000001',
                       'token_positives'),
        'gcg_refcocog': ('gcg/RefCOCOg_GCG_train.json',
                         lambda d: d[0]['1_0']['refs'][0].update(
                             segmentation='oops'),
                         'RefCOCOg_GCG_train.json', '1_0',
                         "field='refs[0].segmentation'"),
        'gcg_flickr': ('gcg/flickr_mergedGT_GCG_train.json',
                       lambda d: d['annotations'][0].update(
                           tokens_positive='0-15'),
                       'flickr_mergedGT_GCG_train.json', 50,
                       "field='tokens_positive'"),
        'gcg_eval': ('gcg/val_gcg_coco_caption_gt.json',
                     lambda d: d['annotations'][0].update(labels='A red'),
                     'val_gcg_coco_caption_gt.json', '000000000001',
                     "field='labels'"),
        'region_caption': ('region_caption/train.json',
                           lambda d: d['annotations'][0].update(bbox=[4, 4]),
                           'train.json', 100, "field='bbox'"),
        'llava_instruct': ('llava_instruct/llava_instruct_150k.json',
                           lambda d: d[0]['conversations'][0].update(
                               {'from': 'robot'}),
                           'llava_instruct_150k.json', '000000000001',
                           "field='conversations[0].from'"),
        'grand': ('grand/annotations/000000000001.json',
                  lambda d: d['000000000001.png']['dense_caption'][
                      'details'][0].update(tokens_positive=[0]),
                  '000000000001.json', '000000000001.png',
                  'dense_caption.details[0].tokens_positive'),
    }
    rel, fn, file, record, field = cases[name]
    edit(root, rel, fn)
    return file, record, field


@pytest.mark.parametrize('name', SOURCES)
def test_malformed_field(root, name):
    file, record, field = _bad_field(name, root)
    expect(SOURCES[name], root, file, record, field)


@pytest.mark.parametrize('name', ['gvc', 'gcg_grandf', 'llava_instruct'])
def test_skip_invalid_warns_with_the_same_names(root, name, monkeypatch):
    file, record, field = _bad_field(name, root)
    logged = []
    monkeypatch.setattr(base_grounding, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    ds = SOURCES[name].build(root, skip_invalid=True)
    assert ds.num_skipped == 1 and len(ds) >= 1
    warning = next(m for m in logged if 'skipping invalid record' in m)
    assert f"file='{file}'" in warning and f'record={record!r}' in warning
    assert field in warning


# --------------------------------------------------------------------------
# a missing field that would become the text "None"
@pytest.mark.parametrize('name, rel, fn, file, record, field', [
    ('refcoco', None, None, 'refs(unc).p', 0, 'sentences[0].raw'),
    ('flickr30k', 'flickr30k/final_flickr_separateGT_train.json',
     lambda d: d['images'][0].pop('caption'),
     'final_flickr_separateGT_train.json', 0, "field='caption'"),
    ('gvc', 'gvc/grounded_visual_chat_data.json',
     lambda d: d[0]['conversations'][1].pop('value'),
     'grounded_visual_chat_data.json', '000000000001',
     "field='conversations[1].value'"),
    ('gcg_grandf', 'gcg/GranDf_HA_GCG_train.json',
     lambda d: d[0].pop('caption'), 'GranDf_HA_GCG_train.json',
     '000000000001', "field='caption'"),
    ('gcg_refcocog', 'gcg/RefCOCOg_GCG_train.json',
     lambda d: d[0]['1_0']['refs'][0].pop('sentence'),
     'RefCOCOg_GCG_train.json', '1_0', "field='refs[0].sentence'"),
    ('gcg_flickr', 'gcg/flickr_mergedGT_GCG_train.json',
     lambda d: d['images'][0].pop('caption'),
     'flickr_mergedGT_GCG_train.json', 5, "field='caption'"),
    ('gcg_eval', 'gcg/val_gcg_coco_caption_gt.json',
     lambda d: d['annotations'][0].pop('caption'),
     'val_gcg_coco_caption_gt.json', '000000000001', "field='caption'"),
    ('region_caption', 'region_caption/train.json',
     lambda d: d['annotations'][0].pop('caption'), 'train.json', 1,
     "field='caption'"),
    ('llava_instruct', 'llava_instruct/llava_instruct_150k.json',
     lambda d: d[0]['conversations'][1].pop('value'),
     'llava_instruct_150k.json', '000000000001',
     "field='conversations[1].value'"),
    ('grand', 'grand/annotations/000000000001.json',
     lambda d: d['000000000001.png']['dense_caption'].pop('caption'),
     '000000000001.json', '000000000001.png', 'dense_caption.caption'),
])
def test_missing_text_never_becomes_none(root, name, rel, fn, file, record,
                                         field):
    if name == 'refcoco':
        path = root / 'refcoco' / 'refs(unc).p'
        refs = pickle.loads(path.read_bytes())
        del refs[0]['sentences'][0]['raw'], refs[0]['sentences'][0]['sent']
        path.write_bytes(pickle.dumps(refs))
    else:
        edit(root, rel, fn)
    expect(SOURCES[name], root, file, record, field)


# --------------------------------------------------------------------------
# a key repeated inside one JSON object (json would keep only the last)
def _dup(data, path, key, placeholder='__DUPLICATE__'):
    obj = data
    for p in path:
        obj = obj[p]
    obj[placeholder] = obj[key]


@pytest.mark.parametrize('name, path, key, file, record, field', [
    ('refcoco', ['annotations', 0], 'segmentation', 'instances.json', 11,
     "field='segmentation'"),
    ('flickr30k', ['images', 0], 'caption',
     'final_flickr_separateGT_train.json', 0, "field='caption'"),
    ('gvc', [0], 'gd_ls', 'grounded_visual_chat_data.json', '000000000001',
     "field='gd_ls'"),
    ('gcg_grandf', [0, 'groundings'], 'A red square',
     'GranDf_HA_GCG_train.json', '000000000001',
     "field='groundings.A red square'"),
    ('gcg_refcocog', [0, '1_0', 'refs', 0], 'sentence',
     'RefCOCOg_GCG_train.json', '1_0', "field='refs[0].sentence'"),
    ('gcg_flickr', ['annotations', 0], 'sam_mask',
     'flickr_mergedGT_GCG_train.json', 5, "field='sam_mask'"),
    ('gcg_eval', ['images', 0], 'file_name', 'val_gcg_coco_caption_gt.json',
     '000000000001', "field='file_name'"),
    ('region_caption', ['annotations', 0], 'caption', 'train.json', 1,
     "field='caption'"),
    ('llava_instruct', [0], 'image', 'llava_instruct_150k.json',
     '000000000001', "field='image'"),
    ('grand', ['000000000001.png', 'objects', 0], 'segmentation',
     '000000000001.json', '000000000001.png',
     "field='objects[0].segmentation'"),
])
def test_repeated_json_key(root, name, path, key, file, record, field):
    src = SOURCES[name]
    edit(root, src.main, lambda d: _dup(d, path, key),
         dup=('__DUPLICATE__', key))
    expect(src, root, file, record, field)


# --------------------------------------------------------------------------
# repeated ids: never silently merged or overwritten
@pytest.mark.parametrize('name, rel, fn, file, record, field', [
    ('refcoco', 'coco/instances.json',
     lambda d: d['images'][1].update(id=1), 'instances.json', 1,
     "field='id'"),
    ('flickr30k', 'flickr30k/final_flickr_separateGT_train.json',
     lambda d: d['images'][1].update(id=0),
     'final_flickr_separateGT_train.json', 0, "field='id'"),
    ('gvc', 'coco/instances.json', lambda d: d['annotations'][1].update(
        id=11), 'instances.json', 11, "field='id'"),
    ('gcg_grandf', 'gcg/GranDf_HA_GCG_train.json',
     lambda d: d[1].update(image_id='000000000001'),
     'GranDf_HA_GCG_train.json', '000000000001', "field='image_id'"),
    ('gcg_refcocog', 'gcg/RefCOCOg_GCG_train.json',
     lambda d: d.append(d[0]), 'RefCOCOg_GCG_train.json', '1_0',
     "field='1_0'"),
    ('gcg_flickr', 'gcg/flickr_mergedGT_GCG_train.json',
     lambda d: d['images'][1].update(id=5),
     'flickr_mergedGT_GCG_train.json', 5, "field='id'"),
    ('gcg_eval', 'gcg/val_gcg_coco_mask_gt.json',
     lambda d: d['annotations'][1].update(id=1), 'val_gcg_coco_mask_gt.json',
     1, "field='id'"),
    ('region_caption', 'region_caption/train.json',
     lambda d: d['images'].append(dict(d['images'][0])), 'train.json', 1,
     "field='id'"),
    ('grand', 'grand/annotations/000000000001.json',
     lambda d: d['000000000001.png']['floating_objects'][0].update(id=1),
     '000000000001.json', '000000000001.png',
     "field='floating_objects[0].id'"),
])
def test_repeated_ids(root, name, rel, fn, file, record, field):
    edit(root, rel, fn)
    expect(SOURCES[name], root, file, record, field)


def test_grand_image_in_two_files(root):
    ann = root / 'grand' / 'annotations'
    shutil.copy(ann / '000000000001.json', ann / 'zz_copy.json')
    expect(SOURCES['grand'], root, 'zz_copy.json', '000000000001.png',
           "field='(image key)'")


# --------------------------------------------------------------------------
# paths leaving the data root are refused before anything is opened
def _set_image(name, data, value):
    if name in ('refcoco', 'gvc'):
        data['images'][0]['file_name'] = value
    elif name in ('flickr30k', 'gcg_flickr', 'gcg_eval', 'region_caption'):
        data['images'][0]['file_name'] = value
        data['images'][0].pop('height')
        data['images'][0].pop('width')
    elif name == 'gcg_grandf':
        data[0]['file_name'] = value
    elif name == 'gcg_refcocog':
        data[0]['1_0']['img_file_name'] = value
    elif name == 'llava_instruct':
        data[0]['image'] = value
    elif name == 'grand':
        data[value] = data.pop('000000000001.png')


_IMAGE_RECORD = {
    'refcoco': ('instances.json', 1, 'file_name'),
    'flickr30k': ('final_flickr_separateGT_train.json', 0, 'file_name'),
    'gvc': ('instances.json', 1, 'file_name'),
    'gcg_grandf': ('GranDf_HA_GCG_train.json', '000000000001', 'file_name'),
    'gcg_refcocog': ('RefCOCOg_GCG_train.json', '1_0', 'img_file_name'),
    'gcg_flickr': ('flickr_mergedGT_GCG_train.json', 5, 'file_name'),
    'gcg_eval': ('val_gcg_coco_caption_gt.json', '000000000001',
                 'file_name'),
    'region_caption': ('train.json', 1, 'file_name'),
    'llava_instruct': ('llava_instruct_150k.json', '000000000001', 'image'),
    'grand': ('000000000001.json', None, '(image key)'),
}


@pytest.mark.parametrize('name', SOURCES)
@pytest.mark.parametrize('kind', ['dotdot', 'absolute'])
def test_path_escaping_the_root_is_refused(root, tmp_path, name, kind):
    # a real image outside the root: a loader that follows the path would
    # succeed, so the test only passes if the path is refused
    outside = tmp_path / 'outside.png'
    shutil.copy(root / 'images' / '000000000001.png', outside)
    value = '../../outside.png' if kind == 'dotdot' else str(outside)
    src = SOURCES[name]
    rel = 'coco/instances.json' if name in ('refcoco', 'gvc') else src.main
    edit(root, rel, lambda d: _set_image(name, d, value))
    file, record, field = _IMAGE_RECORD[name]
    if record is None:
        record = value
    err = expect(src, root, file, record, f"field='{field}'")
    assert repr(value) in str(err)


# --------------------------------------------------------------------------
# RLE run lengths that do not cover the image
@pytest.mark.parametrize('name, rel, fn, file, record, field', [
    ('refcoco', 'coco/instances.json',
     lambda d: d['annotations'][1].update(segmentation=BAD_RLE),
     'instances.json', 12, "field='segmentation'"),
    ('gvc', 'coco/instances.json',
     lambda d: d['annotations'][1].update(segmentation=BAD_RLE),
     'instances.json', 12, "field='segmentation'"),
    ('gcg_grandf', 'gcg/GranDf_HA_GCG_train.json',
     lambda d: d[0]['groundings']['A red square'].update(
         rle_masks=[BAD_RLE]), 'GranDf_HA_GCG_train.json', '000000000001',
     "groundings['A red square'].rle_masks[0]"),
    ('gcg_refcocog', 'gcg/RefCOCOg_GCG_train.json',
     lambda d: d[0]['1_0']['refs'][0].update(segmentation=BAD_RLE),
     'RefCOCOg_GCG_train.json', '1_0', "field='refs[0].segmentation'"),
    ('gcg_flickr', 'gcg/flickr_mergedGT_GCG_train.json',
     lambda d: d['annotations'][0].update(sam_mask=BAD_RLE),
     'flickr_mergedGT_GCG_train.json', 50, "field='sam_mask'"),
    ('gcg_eval', 'gcg/val_gcg_coco_mask_gt.json',
     lambda d: d['annotations'][0].update(segmentation=BAD_RLE),
     'val_gcg_coco_mask_gt.json', 1, "field='segmentation'"),
    ('grand', 'grand/annotations/000000000001.json',
     lambda d: d['000000000001.png']['objects'][0].update(
         segmentation=BAD_RLE), '000000000001.json', '000000000001.png',
     "field='objects[0].segmentation'"),
])
def test_rle_counts_must_cover_the_size(root, name, rel, fn, file, record,
                                        field):
    edit(root, rel, fn)
    err = expect(SOURCES[name], root, file, record, field)
    assert 'cover 15 pixels but the size [32, 32] has 1024' in str(err)


def test_rle_counts_checked_at_sample_time_too(root):
    """With ``check_mask_area=False`` the load-time check is skipped; the
    mask transform still refuses the RLE before pycocotools decodes it."""
    edit(root, 'gcg/GranDf_HA_GCG_train.json',
         lambda d: d[0]['groundings']['A red square'].update(
             rle_masks=[dict(BAD_RLE)]))
    ds = SOURCES['gcg_grandf'].build(root, check_mask_area=False)
    results = ds.get_data_info(0)
    with pytest.raises(GroundingDataError) as info:
        LoadGroundingAnnotations()(results)
    assert_names(info.value, 'GranDf_HA_GCG_train.json', '000000000001',
                 'instances[0].mask')
    assert 'cover 15 pixels' in str(info.value)
    # through the dataset: raised, or skipped for the other record
    ds = SOURCES['gcg_grandf'].build(root, check_mask_area=False,
                                     pipeline=[LoadGroundingAnnotations()])
    with pytest.raises(GroundingDataError, match='cover 15 pixels'):
        ds[0]
    ds = SOURCES['gcg_grandf'].build(root, check_mask_area=False,
                                     pipeline=[LoadGroundingAnnotations()],
                                     skip_invalid=True)
    assert ds[0]['record_id'] == '000000000002'


class _Boom:
    """A transform with a bug: a bare KeyError."""

    def __call__(self, results):
        return results['no_such_key']


def test_any_transform_failure_names_file_and_record(root):
    ds = SOURCES['llava_instruct'].build(root, pipeline=[_Boom()])
    with pytest.raises(GroundingDataError) as info:
        ds[1]
    assert_names(info.value, 'llava_instruct_150k.json', '000000000002',
                 "field='pipeline (_Boom)'")
    assert 'KeyError' in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)


# --------------------------------------------------------------------------
# <image> outside the first user turn, caught at index time
@pytest.mark.parametrize('name, rel, fn, file, record, field', [
    ('gvc', 'gvc/grounded_visual_chat_data.json',
     lambda d: d[0]['conversations'][2].update(value='<image>\nAnd now?'),
     'grounded_visual_chat_data.json', '000000000001',
     "field='conversations[2].value'"),
    ('gvc', 'gvc/grounded_visual_chat_data.json',
     lambda d: d[0]['conversations'][1].update(value='<image> is here.'),
     'grounded_visual_chat_data.json', '000000000001',
     "field='conversations[1].value'"),
    ('llava_instruct', 'llava_instruct/llava_instruct_150k.json',
     lambda d: d[0]['conversations'][2].update(value='<image> Which?'),
     'llava_instruct_150k.json', '000000000001',
     "field='conversations[2].value'"),
    ('llava_instruct', 'llava_instruct/llava_instruct_150k.json',
     lambda d: d[1]['conversations'][1].update(
         value='<image>\n<image>\nHow many?'), 'llava_instruct_150k.json',
     '000000000002', "field='conversations[1].value'"),
])
def test_image_token_outside_first_user_turn(root, name, rel, fn, file,
                                             record, field):
    edit(root, rel, fn)
    expect(SOURCES[name], root, file, record, field)


# --------------------------------------------------------------------------
# source-specific silent paths
def test_refcoco_unknown_split_name(root):
    path = root / 'refcoco' / 'refs(unc).p'
    refs = pickle.loads(path.read_bytes())
    refs[3]['split'] = 'vall'
    path.write_bytes(pickle.dumps(refs))
    err = expect(SOURCES['refcoco'], root, 'refs(unc).p', 3, "field='split'")
    assert "'vall'" in str(err)


def test_flickr_missing_tokens_positive_eval(root):
    edit(root, SOURCES['flickr30k'].main,
         lambda d: d['images'][1].pop('tokens_positive_eval'))
    expect(SOURCES['flickr30k'], root, 'final_flickr_separateGT_train.json',
           1, "field='tokens_positive_eval'")


def test_grandf_phrase_key_must_match_its_span(root):
    # the key says "A red squar" but token_positives cut "A red square"
    edit(root, SOURCES['gcg_grandf'].main,
         lambda d: d[0]['groundings'].update(
             {'A red squar': d[0]['groundings'].pop('A red square')}))
    err = expect(SOURCES['gcg_grandf'], root, 'GranDf_HA_GCG_train.json',
                 '000000000001', 'token_positives')
    assert "'A red square'" in str(err) and "'A red squar'" in str(err)


def test_region_caption_image_without_usable_region(root, monkeypatch):
    def no_region(d):
        d['images'].append(dict(d['images'][0], id=2))
        d['annotations'].append(dict(d['annotations'][0], id=103, image_id=2,
                                     ignore=True))

    edit(root, SOURCES['region_caption'].main, no_region)
    expect(SOURCES['region_caption'], root, 'train.json', 2,
           "field='annotations'")
    logged = []
    monkeypatch.setattr(base_grounding, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    ds = SOURCES['region_caption'].build(root, skip_invalid=True)
    assert [r['img_id'] for r in ds] == [1]  # never a prompt-only record
    assert any('record=2' in m and 'no usable region' in m for m in logged)


@pytest.mark.parametrize('name', ['gvc', 'llava_instruct', 'grand'])
def test_datasets_with_one_split_refuse_others(root, name):
    with pytest.raises(ValueError, match="unknown split 'val'"):
        SOURCES[name].build(root, split='val')
    assert len(SOURCES[name].build(root, split='train')) > 0


# --------------------------------------------------------------------------
# image defects: named at the latest when the sample is fetched
def _break(path, kind):
    if kind == 'missing':
        path.unlink()
    elif kind == 'empty':
        path.write_bytes(b'')
    else:
        path.write_bytes(b'\x89PNG\r\n\x1a\n' + b'garbage' * 20)


@pytest.mark.parametrize('name', SOURCES)
@pytest.mark.parametrize('kind', ['missing', 'empty', 'corrupt'])
def test_image_defect_names_image_record_and_field(root, name, kind):
    for image in ('000000000001.png', '000000000002.png'):
        _break(root / 'images' / image, kind)
    src = SOURCES[name]
    with pytest.raises(GroundingDataError) as info:
        ds = src.build(root, pipeline=[LoadImageFromFile()])
        ds[0]
    msg = str(info.value)
    assert ('000000000001.png' in msg or '000000000002.png' in msg), msg
    assert 'file=' in msg and 'record=' in msg, msg
    assert 'field=' in msg and src.image_field in msg, msg


def test_sample_time_failure_skipped_deterministically(root, monkeypatch):
    src = SOURCES['gvc']
    _break(root / 'images' / '000000000001.png', 'corrupt')
    logged = []
    monkeypatch.setattr(base_grounding, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    ds = src.build(root, pipeline=[LoadImageFromFile()], skip_invalid=True)
    bad = [i for i in range(len(ds))
           if ds.get_data_info(i)['img_path'].endswith('01.png')]
    assert bad
    first = ds[bad[0]]
    assert first['img_path'].endswith('000000000002.png')
    assert ds[bad[0]]['img_path'] == first['img_path']  # deterministic
    warning = next(m for m in logged if 'skipping invalid sample' in m)
    assert "file='grounded_visual_chat_data.json'" in warning
    assert "record='000000000001'" in warning and "field='image'" in warning
    # evaluation never swaps samples: the same failure raises in test mode
    ds = src.build(root, pipeline=[LoadImageFromFile()], skip_invalid=True,
                   test_mode=True)
    with pytest.raises(GroundingDataError, match='cannot be decoded'):
        ds[bad[0]]
