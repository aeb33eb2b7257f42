"""GVCDataset: LLaVA-G grounded visual chat (gd_ls) and GVC-R (q_gd_ls)."""
import json
import os.path as osp

import pytest

from mmgrounding.datasets import GVCDataset
from mmgrounding.structures.errors import GroundingDataError

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')
IMAGES = osp.join(DATA, 'images')


def build(ann_file='gvc/grounded_visual_chat_data.json', **kwargs):
    cfg = dict(data_root=DATA, ann_file=ann_file,
               instances_file='coco/instances.json',
               data_prefix=dict(img_path=IMAGES))
    cfg.update(kwargs)
    return GVCDataset(**cfg)


def write(tmp_path, entries):
    path = tmp_path / 'gvc.json'
    path.write_text(json.dumps(entries))
    return str(path)


def load_fixture(name='grounded_visual_chat_data.json'):
    with open(osp.join(DATA, 'gvc', name)) as f:
        return json.load(f)


def test_markup_parsed_to_spans_and_annotation_ids():
    ds = build()
    assert len(ds) == 2
    rec = ds[0]
    assert rec['task'] == 'gvc' and rec['img_id'] == 1
    convs = rec['conversations']
    assert convs[1]['text'] == 'I see a red square and two other shapes.'
    assert convs[3]['text'] == 'A green triangle.'
    got = [(p['turn'], convs[p['turn']]['text'][p['start']:p['end']],
            [rec['instances'][i]['ann_id'] for i in p['instance_ids']])
           for p in rec['phrases']]
    assert got == [(1, 'a red square', [11]),
                   (1, 'two other shapes', [12, 13]),
                   (3, 'A green triangle', [13])]
    assert [i['ann_id'] for i in rec['instances']] == [11, 12, 13]
    assert '<seg>' not in ''.join(c['text'] for c in convs)


def test_image_token_moved_and_ungrounded_seg():
    rec = build()[1]
    assert rec['conversations'][0]['text'] == \
        '<image>\nDescribe the image. (with grounding)'
    # gd_ls[1] is null: dropped by default, kept empty with 'keep'
    assert [p['text'] for p in rec['phrases']] == ['A yellow square']
    kept = build(ungrounded='keep')[1]['phrases']
    assert [(p['text'], p['instance_ids']) for p in kept] == [
        ('A yellow square', [0]), ('something', [])]


def test_seg_count_mismatch_raises(tmp_path):
    entries = load_fixture()
    entries[0]['gd_ls'] = entries[0]['gd_ls'][:2]
    path = write(tmp_path, entries)
    with pytest.raises(GroundingDataError) as info:
        build(ann_file=path)
    err = info.value
    assert err.field == 'gd_ls' and err.record == '000000000001'
    assert '3 <seg>' in str(err) and 'gvc.json' in str(err)
    assert len(build(ann_file=path, skip_invalid=True)) == 1


def test_unknown_annotation_id_raises(tmp_path):
    entries = load_fixture()
    entries[1]['gd_ls'][0] = [12345]
    with pytest.raises(GroundingDataError) as info:
        build(ann_file=write(tmp_path, entries))
    assert info.value.field == 'gd_ls[0]' and '12345' in str(info.value)


def test_gvc_r_regions_from_q_gd_ls():
    rec = build('gvc/llava_instruct_150k_visual_prompt.json')[0]
    assert rec['task'] == 'gvc_r' and rec['region_token'] == '<obj>'
    assert [r['instance_id'] for r in rec['regions']] == [0, 0, 1]
    assert rec['regions'][2]['bbox'] == [20.0, 20.0, 28.0, 28.0]
    assert rec['conversations'][2]['text'] == 'Is <obj> left of <obj>?'


def test_gvc_r_count_mismatch_raises(tmp_path):
    entries = load_fixture('llava_instruct_150k_visual_prompt.json')
    entries[0]['q_gd_ls'] = [[11]]
    with pytest.raises(GroundingDataError) as info:
        build(ann_file=write(tmp_path, entries))
    assert info.value.field == 'q_gd_ls'


def test_refcoco_style_packing_and_answer_lists():
    ds = build('gvc/grounding_train2017_instruct.json')
    assert len(ds) == 2  # one record per entry
    first = ds[0]['conversations']
    assert first[0]['text'] == '<image>\nPlease describe <obj> briefly.'
    assert first[1]['text'] in ('red square', 'square on the left')
    packed = build('gvc/grounding_train2017_instruct.json',
                   max_convs_per_image=3)
    assert len(packed) == 1
    rec = packed[0]
    assert len(rec['conversations']) == 4 and len(rec['regions']) == 2
    assert [c['text'].count('<image>') for c in rec['conversations']] == \
        [1, 0, 0, 0]


def test_packing_uses_every_entry(tmp_path):
    entries = load_fixture('grounding_train2017_instruct.json') * 2
    ds = build(write(tmp_path, entries), max_convs_per_image=3)
    assert len(ds) == 2  # 4 entries of one image -> chunks of 3 and 1
    assert sorted(len(ds[i]['regions']) for i in range(2)) == [1, 3]
    again = build(write(tmp_path, entries), max_convs_per_image=3)
    assert [again[i]['conversations'] for i in range(2)] == \
        [ds[i]['conversations'] for i in range(2)]


def test_one_per_question_view_keeps_question_regions_and_answer():
    recs = build('gvc/llava_instruct_150k_visual_prompt.json',
                 one_per_question=True, test_mode=True)
    assert len(recs) == 2
    first, second = recs[0], recs[1]
    assert first['conversations'] == [
        dict(role='user', text='<image>\nWhat color is <obj>?')]
    assert first['question'] == 'What color is <obj>?'
    assert first['gt_answer'] == 'It is red.'
    assert first['answer_field'] == 'conversations[1].value'
    assert first['record_id'] == '000000000001'
    assert first['phrases'] == []
    ann_ids = [[second['instances'][r['instance_id']]['ann_id']]
               for r in second['regions']]
    assert [first['instances'][r['instance_id']]['ann_id']
            for r in first['regions']] == [11]
    # the second question keeps its two <obj> (q_gd_ls entries 2 and 3)
    assert second['conversations'][0]['text'] == \
        '<image>\nIs <obj> left of <obj>?'
    assert ann_ids == [[11], [12]]
    assert second['gt_answer'] == 'Yes.'
    assert second['answer_field'] == 'conversations[3].value'
    assert second['question_index'] == 1


def test_one_per_question_rejects_an_unanswered_region_question(tmp_path):
    entries = load_fixture('llava_instruct_150k_visual_prompt.json')
    entries[0]['conversations'] = entries[0]['conversations'][:3]
    entries[0]['q_gd_ls'] = entries[0]['q_gd_ls'][:1] + [[12], [11]]
    with pytest.raises(GroundingDataError) as err:
        build(write(tmp_path, entries), one_per_question=True,
              test_mode=True)
    msg = str(err.value)
    assert 'gvc.json' in msg and "'000000000001'" in msg
    assert 'conversations[2]' in msg and 'without an answer' in msg
