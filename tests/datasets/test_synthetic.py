"""Tests of the synthetic grounding world generator and its tiny tokenizer."""
import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

os.environ.setdefault('HF_HUB_OFFLINE', '1')

from mmgrounding.datasets.synthetic import SPECIAL_TOKENS, generate_world  # noqa: E402
from mmgrounding.datasets.synthetic.language import (  # noqa: E402
    vocabulary_corpus, world_words)
from mmgrounding.datasets.synthetic.writers import PickleListWriter  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SCRIPT = os.path.join(ROOT, 'tools', 'dataset_converters', 'make_synthetic.py')
N = 40


def _files(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, 'rb') as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


@pytest.fixture(scope='module')
def worlds(tmp_path_factory):
    base = tmp_path_factory.mktemp('synthetic')
    paths = {}
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        paths[name] = str(base / name)
        generate_world(paths[name], num_images=N, seed=seed, preview=2 if name == 'a' else 0,
                       with_tokenizer=name != 'c', log=lambda *a: None)
    return paths


@pytest.fixture(scope='module')
def world(worlds):
    return worlds['a']


def _load(world, *rel):
    with open(os.path.join(world, 'annotations', *rel)) as f:
        return json.load(f)


def test_same_seed_same_bytes_different_seed_differs(worlds):
    a, b, c = (_files(worlds[k]) for k in 'abc')
    a.pop('preview.png')
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], f'{name} differs between two runs with seed 0'
    for name in ('annotations/instances.json', 'annotations/refs(unc).p',
                 'images/000000000001.png', 'annotations/gcg/GranDf_HA_GCG_train.json',
                 'annotations/llava_instruct/llava_instruct_150k.json',
                 'annotations/grand/000000000001.json'):
        assert a[name] != c[name], f'{name} is identical for seeds 0 and 1'
    assert not any(n.endswith('.part') for n in a), 'temporary files left behind'


def test_instances_masks_match_boxes(world):
    coco = COCO(os.path.join(world, 'annotations', 'instances.json'))
    assert len(coco.imgs) == N
    assert sorted(c['name'] for c in coco.cats.values()) == ['circle', 'square', 'triangle']
    kinds = set()
    for ann in coco.anns.values():
        m = coco.annToMask(ann)
        ys, xs = np.nonzero(m)
        assert m.sum() == ann['area'] > 0
        x, y, w, h = ann['bbox']
        assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
        assert abs(xs.max() + 1 - (x + w)) <= 1 and abs(ys.max() + 1 - (y + h)) <= 1
        kinds.add(type(ann['segmentation']).__name__)
    # unoccluded shapes are polygons, occluded ones RLE: both must occur
    assert kinds == {'list', 'dict'}
    # the pixels of a mask carry one colour, the visible shape's
    from PIL import Image
    ann = next(iter(coco.anns.values()))
    name = coco.imgs[ann['image_id']]['file_name']
    img = np.asarray(Image.open(os.path.join(world, 'images', name)))
    assert img.shape == (128, 128, 3)
    colors = np.unique(img[coco.annToMask(ann).astype(bool)], axis=0)
    assert len(colors) == 1


def test_refcoco_splits_load_with_mmdet(world):
    from mmdet.datasets import RefCocoDataset
    with open(os.path.join(world, 'annotations', 'refs(unc).p'), 'rb') as f:
        refs = pickle.load(f)
    coco = COCO(os.path.join(world, 'annotations', 'instances.json'))
    sizes = {}
    for split in ('train', 'val', 'testA', 'testB'):
        ds = RefCocoDataset(data_root=world, ann_file='annotations/instances.json',
                            split_file='annotations/refs(unc).p', split=split,
                            data_prefix=dict(img_path='images/'), pipeline=[],
                            text_mode='original')
        sizes[split] = len(ds)
        item = ds[0]
        assert os.path.isfile(item['img_path'])
        assert len(item['instances']) == len(item['text']) > 0
    assert sizes == {'train': 32, 'val': 4, 'testA': 2, 'testB': 2}
    # every expression picks out exactly its referent, and is unique in its image
    per_image = {}
    kinds = set()
    for ref in refs:
        anns = coco.imgToAnns[ref['image_id']]
        for s in ref['sentences']:
            kinds.add(s['type'])
            per_image.setdefault(ref['image_id'], []).append(s['sent'])
            assert not s['sent'].startswith('the ')
            assert s['tokens'] == s['sent'].split()
    assert kinds == {'attribute', 'spatial'}
    for sents in per_image.values():
        assert len(sents) == len(set(sents))


# An independent reading of a referring expression, written from the rule the
# world states (not from its parser): "[size] [colour] shape", optionally
# followed by "left of/right of/above/below the <landmark description>"; a
# relation holds when the centres of the two objects' visible-pixel boxes
# differ by at least 1/8 of the image side along its axis, and is clearly
# false below 1/16 of it.
_REL_AXIS = {'left of': (0, -1), 'right of': (0, 1), 'above': (1, -1),
             'below': (1, 1)}


def _box_centre(mask):
    ys, xs = np.nonzero(mask)
    return (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2


def _denoted(expression, objects, side, gap=1 / 8):
    """Indices of ``objects`` (``(attributes, mask)`` pairs) that
    ``expression`` may denote, the relation holding at ``gap * side``."""
    def described(words):
        *adjectives, kind = words.split()
        return [i for i, (at, _) in enumerate(objects) if at['shape'] == kind
                and all(w in (at['size'], at['color']) for w in adjectives)]

    m = re.fullmatch(r'(.+?) (left of|right of|above|below) the (.+)',
                     expression)
    if m is None:
        return described(expression)
    head, rel, tail = m.groups()
    landmarks = described(tail)
    if len(landmarks) != 1:
        return []
    axis, sign = _REL_AXIS[rel]
    centres = [_box_centre(mask) for _, mask in objects]
    ref = centres[landmarks[0]][axis]
    return [i for i in described(head) if i != landmarks[0]
            and sign * (centres[i][axis] - ref) >= gap * side]


def _scene(coco, img_id):
    return [(a['attributes'], coco.annToMask(a).astype(bool))
            for a in coco.imgToAnns[img_id]]


def _picks_only(expression, objects, target, side=128):
    """The expression clearly denotes ``target`` and can denote no other."""
    return (_denoted(expression, objects, side) == [target]
            == _denoted(expression, objects, side, gap=1 / 16))


def test_denoted_reads_expressions_by_hand():
    """The test's own reader on a hand-made scene (128 px): 0 = small red
    circle centred at x 20, 1 = large red circle at x 60, 2 = blue square
    at x 100."""
    def obj(shape, color, size, x):
        m = np.zeros((128, 128), bool)
        m[60:70, x - 5:x + 5] = True
        return dict(shape=shape, color=color, size=size), m
    objs = [obj('circle', 'red', 'small', 20), obj('circle', 'red', 'large', 60),
            obj('square', 'blue', 'large', 100)]
    assert _denoted('circle', objs, 128) == [0, 1]
    assert _denoted('small circle', objs, 128) == [0]
    assert _denoted('circle left of the square', objs, 128) == [0, 1]
    assert _denoted('circle left of the red circle', objs, 128) == []
    assert _denoted('red circle right of the small circle', objs, 128) == [1]
    assert _denoted('square above the small circle', objs, 128) == []
    assert _picks_only('large circle', objs, 1)
    assert not _picks_only('circle left of the square', objs, 0)


def test_expressions_resolve_to_their_referent(world):
    """Every expression of refs(unc).p denotes its referent only, read from
    instances.json attributes and masks by the test's own reader."""
    coco = COCO(os.path.join(world, 'annotations', 'instances.json'))
    with open(os.path.join(world, 'annotations', 'refs(unc).p'), 'rb') as f:
        refs = pickle.load(f)
    n = 0
    for ref in refs:
        objs = _scene(coco, ref['image_id'])
        target = [a['id'] for a in coco.imgToAnns[ref['image_id']]].index(
            ref['ann_id'])
        for s in ref['sentences']:
            assert _picks_only(s['sent'], objs, target), s['sent']
            n += 1
    assert n > N


def test_gcg_files(world):
    train = _load(world, 'gcg', 'GranDf_HA_GCG_train.json')
    assert len(train) == 32
    for rec in train:
        assert set(rec) >= {'file_name', 'caption', 'groundings'}
        starts = [g['token_positives'][0] for g in rec['groundings'].values()]
        assert starts == sorted(starts)
        for phrase, g in rec['groundings'].items():
            s, e = g['token_positives']
            assert rec['caption'][s:e] == phrase
            assert len(g['rle_masks']) == len(g['ann_ids']) >= 1
            for rle in g['rle_masks']:
                assert mask_utils.decode(rle).sum() > 0
    assert any(len(g['rle_masks']) > 1 for r in train for g in r['groundings'].values())
    mask_gt = COCO(os.path.join(world, 'annotations', 'gcg', 'val_gcg_coco_mask_gt.json'))
    cap = _load(world, 'gcg', 'val_gcg_coco_caption_gt.json')
    assert len(cap['images']) == 4
    for c in cap['annotations']:
        assert isinstance(c['image_id'], str)
        anns = [a for a in mask_gt.anns.values() if a['image_id'] == c['image_id']]
        assert len(anns) == len(c['labels']) > 0  # one mask per phrase
        for label in c['labels']:
            assert label in c['caption']
        for a in anns:
            assert a['category_id'] == 1 and isinstance(a['segmentation']['counts'], str)


def test_gcg_ground_truth_works_with_coco_eval(world, capsys):
    """The official evaluator's calls: loadRes + COCOeval('segm', catIds=[1])
    on string image ids; the ground truth as prediction scores AP50 = 1."""
    from pycocotools.cocoeval import COCOeval
    gt = COCO(os.path.join(world, 'annotations', 'gcg', 'val_gcg_coco_mask_gt.json'))
    preds = [{'image_id': a['image_id'], 'category_id': 1, 'segmentation': a['segmentation'],
              'score': 1.0} for a in gt.anns.values()]
    ev = COCOeval(gt, gt.loadRes(preds), 'segm')
    ev.params.catIds = [1]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[1] == pytest.approx(1.0)
    cap = COCO(os.path.join(world, 'annotations', 'gcg', 'val_gcg_coco_caption_gt.json'))
    res = cap.loadRes([{'image_id': a['image_id'], 'caption': a['caption'], 'labels': a['labels']}
                       for a in cap.anns.values()])
    assert sorted(res.getImgIds()) == sorted(cap.getImgIds())


def test_gvc_files(world):
    instances = _load(world, 'instances.json')
    ann_ids = {a['id']: a['image_id'] for a in instances['annotations']}
    for split, n in (('train', 32), ('val', 4)):
        gvc = _load(world, 'llava_g', f'grounded_visual_chat_data_{split}.json')
        assert len(gvc) == n
        for rec in gvc:
            text = ''.join(c['value'] for c in rec['conversations'])
            assert text.count('<seg>') == len(rec['gd_ls']) > 0
            assert len(re.findall(r'<g_s> [^<]+ <g_e> <seg>', text)) == len(rec['gd_ls'])
            assert rec['conversations'][0]['value'].startswith('<image>\n')
            assert '(with grounding)' in rec['conversations'][0]['value']
            assert [c['from'] for c in rec['conversations']][:2] == ['human', 'gpt']
            for ids in rec['gd_ls']:
                assert all(ann_ids[i] == int(rec['id']) for i in ids)
        gvcr = _load(world, 'llava_g', f'llava_instruct_visual_prompt_{split}.json')
        for rec in gvcr:
            q = ''.join(c['value'] for c in rec['conversations'] if c['from'] == 'human')
            assert q.count('<obj>') == len(rec['q_gd_ls']) > 0
            assert all(ann_ids[i] == int(rec['id']) for ids in rec['q_gd_ls'] for i in ids)
        inst = _load(world, 'llava_g', f'grounding_{split}_instruct.json')
        for rec in inst:
            assert rec['conversations'][0]['value'].count('<obj>') == 1
            assert isinstance(rec['conversations'][1]['value'], list)


def test_region_caption_and_flickr_files(world):
    from mmdet.datasets import Flickr30kDataset
    cap = COCO(os.path.join(world, 'annotations', 'region_caption',
                            'finetune_refcocog_val_captions.json'))
    for img_id in cap.imgs:  # GLaMM RegionCapDDP reads anns[image_id]
        assert cap.anns[img_id]['caption'] and len(cap.anns[img_id]['bbox']) == 4
    train = _load(world, 'region_caption', 'finetune_refcocog_train.json')
    assert len(train['images']) == len(train['annotations']) > 0
    vg = COCO(os.path.join(world, 'annotations', 'region_caption', 'vg_test_caption.json'))
    assert all(vg.anns[i]['caption'] for i in vg.imgs)
    for split in ('train', 'val'):
        ds = Flickr30kDataset(data_root=world,
                              ann_file=f'annotations/flickr/final_flickr_separateGT_{split}.json',
                              data_prefix=dict(img='images/'), pipeline=[])
        assert len(ds) == 2 * (32 if split == 'train' else 4)
        for i in range(len(ds)):
            item = ds[i]
            assert len(item['phrase_ids']) == len(item['instances'])
            assert max(item['phrase_ids']) + 1 == len(item['phrases'])
            for ph, spans in zip(item['phrases'], item['tokens_positive']):
                assert item['text'][spans[0][0]:spans[0][1]] == ph


def test_tokenizer(world):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(os.path.join(world, 'tokenizer'))
    assert tok.is_fast and 300 < len(tok) < 2100
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == (
        '<s>', '</s>', '<pad>', '<unk>')
    ids = set()
    for t in SPECIAL_TOKENS:
        enc = tok(t, add_special_tokens=False).input_ids
        assert enc == [tok.convert_tokens_to_ids(t)], t
        ids.add(enc[0])
    assert len(ids) == len(SPECIAL_TOKENS)
    # world words are single tokens, after a space and at the start
    for w in world_words(vocabulary_corpus()):
        for form in (w, ' ' + w, w[0].upper() + w[1:], ' ' + w[0].upper() + w[1:]):
            assert len(tok(form, add_special_tokens=False).input_ids) == 1, form
    texts = [r['caption'] for r in _load(world, 'gcg', 'GranDf_HA_GCG_train.json')]
    texts += [c['value'] for r in _load(world, 'llava_g', 'grounded_visual_chat_data_train.json')
              for c in r['conversations']]
    texts += ['ünïcødé 😀 and tabs\tand\nnew lines', 'USER: <image> ASSISTANT: It is [SEG].</s>']
    for t in texts:
        enc = tok(t, add_special_tokens=False)
        assert tok.decode(enc.input_ids) == t
    enc = tok('A small red circle', return_offsets_mapping=True)
    assert enc.input_ids[0] == tok.bos_token_id and enc.input_ids[-1] != tok.eos_token_id
    assert enc.offset_mapping[-1] == (11, 18)


def test_preview_written(world):
    assert os.path.getsize(os.path.join(world, 'preview.png')) > 1000


def test_pickle_list_writer_roundtrip(tmp_path):
    items = [{'a': i, 's': 'x' * (i % 3), 'l': [{'k': 'v'}] * 2} for i in range(2503)]
    w = PickleListWriter(str(tmp_path / 'x.p'))
    for it in items:
        w.add(it)
    w.close()
    with open(tmp_path / 'x.p', 'rb') as f:
        assert pickle.load(f) == items
    w = PickleListWriter(str(tmp_path / 'empty.p'))
    w.close()
    with open(tmp_path / 'empty.p', 'rb') as f:
        assert pickle.load(f) == []


@pytest.mark.parametrize('args,message', [
    (['--num-images', '0'], 'must be >= 1'),
    (['--num-images', 'many'], 'expected an integer'),
    (['--image-size', '0'], 'must be >= 32'),
    (['--bogus'], 'unrecognized arguments'),
    (['--out', SCRIPT], 'is not a directory'),
])
def test_bad_cli_arguments(args, message):
    out = subprocess.run([sys.executable, SCRIPT] + args, capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode != 0
    assert message in out.stderr


def test_api_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match='num_images'):
        generate_world(str(tmp_path / 'w'), num_images=0)
    f = tmp_path / 'file'
    f.write_text('x')
    with pytest.raises(ValueError, match='not a directory'):
        generate_world(str(f), num_images=1)


# ------------------------------------------------ LLaVA-Instruct chat, GranD
# An independent reading of the chat: objects from instances.json, question
# wordings parsed here, answers recomputed from the objects.
NUMBERS = {'no': 0, 'none': 0, 'one': 1, 'two': 2, 'three': 3, 'four': 4}
COLOR_WORDS = ('red', 'green', 'blue', 'yellow', 'purple', 'orange')
SHAPE_WORDS = ('circle', 'square', 'triangle')
SIDE_AXES = {'on the left': (0, -1), 'on the right': (0, 1), 'at the top': (1, -1),
             'at the bottom': (1, 1)}
REL_AXES = {'left of': (0, -1), 'right of': (0, 1), 'above': (1, -1), 'below': (1, 1)}
GAP = 0.125 * 128  # a relation holds with this centre gap (docs/formats.md)
ATTRIBUTE_PATTERNS = [
    ('color', r'What colou?r is the (.+)\?'), ('color', r'What is the color of the (.+)\?'),
    ('color', r'Which color does the (.+) have\?'), ('shape', r'What shape is the (.+)\?'),
    ('shape', r'What is the shape of the (.+)\?'), ('shape', r'What kind of shape is the (.+)\?'),
    ('size', r'Is the (.+) (?:small or large|large or small)\?'),
    ('size', r'How big is the (.+)\?'), ('size', r'What size is the (.+)\?')]


def _objects(world):
    """image file name -> [{'color', 'shape', 'size', 'center', 'id'}]."""
    coco = _load(world, 'instances.json')
    names = {im['id']: im['file_name'] for im in coco['images']}
    out = {}
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        out.setdefault(names[a['image_id']], []).append(
            dict(a['attributes'], center=(x + w / 2, y + h / 2), id=a['id']))
    return out


def _words(text):
    return re.findall(r'[a-z]+', text.lower())


def _filter(words, objs):
    """Objects fitting the colour/shape/size words (plural shapes too)."""
    keep = objs
    for w in words:
        if w in COLOR_WORDS:
            keep = [o for o in keep if o['color'] == w]
        elif w.rstrip('s') in SHAPE_WORDS:
            keep = [o for o in keep if o['shape'] == w.rstrip('s')]
        elif w in ('small', 'large'):
            keep = [o for o in keep if o['size'] == w]
    return keep


def _denote(desc, objs):
    """Objects a chat description denotes ("large square", "red object",
    "circle on the left": the extreme one of exactly two look-alikes)."""
    for side, (axis, sign) in SIDE_AXES.items():
        if desc.endswith(' ' + side):
            peers = _filter(_words(desc[:-len(side)]), objs)
            assert len(peers) == 2, (desc, peers)
            a, b = sorted(peers, key=lambda o: sign * o['center'][axis])
            assert sign * (b['center'][axis] - a['center'][axis]) >= GAP, desc
            return [b]
    return _filter(_words(desc), objs)


def _number(answer):
    return next(NUMBERS[w] for w in _words(answer) if w in NUMBERS)


def _check_turn(question, answer, objs):
    """Recompute the answer of one question; returns the question kind."""
    q = question.replace('<image>', '').strip()
    words = _words(q)
    if q.startswith(('How many', 'Count the')):
        assert _number(answer) == len(_filter(words, objs)), (q, answer)
        return 'count'
    if q.startswith(('Is there', 'Can you see', 'Are there any')):
        n = len(_filter(words, objs))
        assert answer.startswith('Yes' if n else 'No') and _number(answer) == n, (q, answer)
        return 'exists'
    for attr, pattern in ATTRIBUTE_PATTERNS:
        m = re.fullmatch(pattern, q)
        if m:
            target = _denote(m.group(1), objs)
            assert len(target) == 1, (q, target)
            vocab = {'color': COLOR_WORDS, 'shape': SHAPE_WORDS,
                     'size': ('small', 'large')}[attr]
            assert [w for w in _words(answer) if w in vocab] == [target[0][attr]], (q, answer)
            assert not answer.startswith('The ') or \
                answer.startswith(f'The {m.group(1)} is '), (q, answer)
            return attr
    m = re.fullmatch(r'Is the (.+) (left of|right of|above|below) the (.+)\?', q) or \
        re.fullmatch(r'Where is the (.+) (?:relative|compared) to the (.+)\?', q)
    if m:
        (a, ), (b, ) = _denote(m.group(1), objs), _denote(m.group(m.lastindex), objs)
        if q.startswith('Where'):
            rel = next(r for r in REL_AXES if f' {r} the ' in answer)
        else:
            rel = m.group(2)
        axis, sign = REL_AXES[rel]
        diff = sign * (a['center'][axis] - b['center'][axis])
        holds = answer.startswith(('Yes', 'It is', 'The'))
        if answer.startswith('The '):  # the answer repeats both names
            assert answer.startswith(f'The {m.group(1)} is '), (q, answer)
        if answer.count(' the ') or answer.startswith('It is'):
            assert answer.endswith(f' the {m.group(m.lastindex)}.'), (q, answer)
        assert (diff >= GAP) if holds else (diff <= -GAP), (q, answer, diff)
        return 'where' if q.startswith('Where') else 'relation'
    if q.startswith(('Describe', 'What is in', 'What do you see', 'Give a short')):
        # every object is named once: "a (size) colour shape" or "N colour shapes"
        phrases = re.findall(r'\b(an?|two|three|four) (?:(small|large) )?(\w+) (\w+)',
                             answer.lower())
        named = []
        for num, size, color, shape in phrases:
            n = NUMBERS.get(num, 1)
            fits = _filter([color, shape], objs)
            assert len(fits) == n and shape.endswith('s') == (n > 1), (answer, num, shape)
            assert not size or fits[0]['size'] == size, answer
            named += [o['id'] for o in fits]
        assert sorted(named) == sorted(o['id'] for o in objs), answer
        return 'describe'
    raise AssertionError(f'unparsed question {question!r}')


def test_llava_instruct_answers_match_the_scene(world):
    from mmgrounding.datasets import LLaVAInstructDataset
    objects = _objects(world)
    kinds, counts, lengths = set(), set(), set()
    for split, n in (('train', 32), ('val', 4)):
        name = 'llava_instruct_150k.json' if split == 'train' else 'llava_instruct_150k_val.json'
        entries = _load(world, 'llava_instruct', name)
        assert [e['image'] for e in entries] == [f'{i:012d}.png' for i in (
            range(1, 33) if split == 'train' else range(33, 37))]
        for e in entries:
            convs = e['conversations']
            assert [c['from'] for c in convs] == ['human', 'gpt'] * (len(convs) // 2)
            lengths.add(len(convs) // 2)
            text = ''.join(c['value'] for c in convs)
            assert text.count('<image>') == 1 and '<image>' in convs[0]['value']
            for mark in ('<g_s>', '<g_e>', '<seg>', '<obj>', '<bbox>', '[SEG]', '<p>',
                         '(with grounding)'):
                assert mark not in text
            questions = [c['value'] for c in convs[::2]]
            assert len(set(questions)) == len(questions)
            for q, a in zip(questions, [c['value'] for c in convs[1::2]]):
                kinds.add(_check_turn(q, a, objects[e['image']]))
                if q.startswith(('How many', 'Count')) or 'How many' in q:
                    counts.add(_number(a))
        ds = LLaVAInstructDataset(data_root=world, ann_file=f'annotations/llava_instruct/{name}',
                                  data_prefix=dict(img_path='images/'), pipeline=[])
        assert len(ds) == n
        rec = ds[0]
        assert rec['task'] == 'chat' and rec['conversations'][0]['text'].startswith('<image>')
        assert (rec['height'], rec['width']) == (128, 128)
        assert [t['text'] for t in rec['conversations'][1::2]] == \
            [c['value'] for c in entries[0]['conversations'][1::2]]
    assert kinds == {'count', 'exists', 'color', 'shape', 'size', 'relation', 'where',
                     'describe'}
    assert 0 in counts and max(counts) >= 2 and lengths >= {2, 3, 4}


def test_grand_files_load_and_match_instances(world):
    from mmgrounding.datasets import GranDPretrainDataset
    coco = COCO(os.path.join(world, 'annotations', 'instances.json'))
    files = sorted(os.listdir(os.path.join(world, 'annotations', 'grand')))
    assert files == [f'{i:012d}.json' for i in range(1, 33)]  # train images only
    ds = GranDPretrainDataset(data_root=world, ann_file='annotations/grand/',
                              data_prefix=dict(img_path='images/'), pipeline=[])
    assert len(ds) == 2 * 32  # a dense-caption and a referring record per image
    objects = _objects(world)
    n_phrases = 0
    for i in range(len(ds)):
        rec = ds[i]
        img_id = int(rec['img_id'])
        assert os.path.isfile(rec['img_path']) and rec['height'] == 128
        for inst in rec['instances']:  # masks and xyxy boxes of instances.json
            ann = coco.anns[inst['ann_id']]
            assert ann['image_id'] == img_id
            x, y, w, h = ann['bbox']
            assert inst['bbox'] == [x, y, x + w, y + h]
            assert (mask_utils.decode(inst['mask']) == coco.annToMask(ann)).all()
            assert inst['category'] == ann['attributes']['shape']
        answer = rec['conversations'][1]['text']
        for p in rec['phrases']:
            text = rec['conversations'][p['turn']]['text'][p['start']:p['end']]
            assert text == p['text']
            anns = [coco.anns[rec['instances'][k]['ann_id']]['attributes']
                    for k in p['instance_ids']]
            if rec['task'] == 'gcg':  # the phrase names its instances
                assert all(a['color'] in text and a['shape'] in text for a in anns)
                n_phrases += 1
            else:  # a referring expression that picks out its object only
                assert text.startswith('the ')
                assert _picks_only(
                    text[4:], _scene(coco, img_id),
                    [a['id'] for a in coco.imgToAnns[img_id]].index(
                        rec['instances'][p['instance_ids'][0]]['ann_id'])), text
        if rec['task'] == 'gcg':
            assert sorted(a for p in rec['phrases'] for a in p['instance_ids']) == \
                list(range(len(objects[f'{img_id:012d}.png']))), answer
    assert n_phrases > 64
    short = GranDPretrainDataset(data_root=world, ann_file='annotations/grand/',
                                 data_prefix=dict(img_path='images/'), pipeline=[],
                                 tasks=('caption', ), caption_source='short')
    assert 0 < len(short) <= 32
    for i in range(len(short)):  # short-caption phrases name one object each
        assert all(len(p['instance_ids']) == 1 for p in short[i]['phrases'])


