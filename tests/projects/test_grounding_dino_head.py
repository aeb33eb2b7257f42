"""projects/grounding_dino_head: phrases -> GroundingDINO prompt, top box per
phrase, LMM answer phrases, the transformers-5 BERT wrapper, the RefCOCO
converter and the grounder built from the tiny GroundingDINO config (random
weights, saved and loaded as a checkpoint)."""
import json
import os
import pickle
from pathlib import Path

import mmcv
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.structures import InstanceData

from mmgrounding.datasets.synthetic import generate_world
from mmgrounding.registry import MODELS
from mmgrounding.structures import GroundingDataError
from projects.grounding_dino_head.grounding_dino_head import (
    GroundingDINOPhraseGrounder, LocalBertModel, answer_phrases,
    phrases_to_prompt, top_box_per_phrase)
from projects.grounding_dino_head.tools.build_tiny_bert import \
    build_tiny_bert
from projects.grounding_dino_head.tools.refcoco_to_grounding import (
    mdetr_refexp, odvg_records)

os.environ.setdefault('HF_HUB_OFFLINE', '1')
ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / 'projects' / 'grounding_dino_head'
DET_CFG = PROJECT / 'configs' / 'grounding-dino_r18-tiny_synthetic-refcoco.py'
DIRECT_CFG = PROJECT / 'configs' / (
    'gdino-grounder_direct_synthetic-refcoco-val.py')
LMM_CFG = PROJECT / 'configs' / (
    'gdino-grounder_glamm-tiny_synthetic-refcoco-val.py')


# -------------------------------------------------------------- phrases
def test_phrases_to_prompt_hand_computed_spans():
    text, spans = phrases_to_prompt(['red circle', '  the   square ', 'it'])
    # 'red circle' 0-10, '. ' 10-12, 'the square' 12-22, '. ', 'it' 24-26
    assert text == 'red circle. the square. it'
    assert spans == [[[0, 10]], [[12, 22]], [[24, 26]]]
    assert [text[s:e] for [[s, e]] in spans] == ['red circle', 'the square',
                                                 'it']


def test_phrases_to_prompt_rejects_bad_phrases():
    with pytest.raises(GroundingDataError, match="record=7, field='phrases'"):
        phrases_to_prompt([], record=7)
    with pytest.raises(GroundingDataError, match=r"field='phrases\[1\]'"):
        phrases_to_prompt(['circle', '   '])
    with pytest.raises(GroundingDataError,
                       match=r"file='refs.json', field='phrases\[0\]'"):
        phrases_to_prompt([None], file='/x/refs.json')


def test_top_box_per_phrase_picks_best_of_each_label():
    inst = InstanceData(
        bboxes=torch.arange(20, dtype=torch.float32).reshape(5, 4),
        scores=torch.tensor([0.3, 0.9, 0.5, 0.5, 0.2]),
        labels=torch.tensor([2, 0, 2, 0, 0]))
    top = top_box_per_phrase(inst, 4)
    # phrase 0: rows 1 (0.9), 3, 4 -> row 1; phrase 1: none; phrase 2:
    # rows 0 (0.3), 2 (0.5) -> row 2; phrase 3: none
    assert top.labels.tolist() == [0, 2]
    assert top.scores.tolist() == pytest.approx([0.9, 0.5])
    assert top.bboxes.tolist() == [[4., 5., 6., 7.], [8., 9., 10., 11.]]
    # ties: the first detection wins
    tie = InstanceData(bboxes=torch.zeros(2, 4), scores=torch.ones(2),
                       labels=torch.zeros(2, dtype=torch.long))
    tie.bboxes[1] += 1
    assert top_box_per_phrase(tie, 1).bboxes.tolist() == [[0.] * 4]
    with pytest.raises(ValueError, match=r'outside \[0, 2\)'):
        top_box_per_phrase(inst, 2)


def test_answer_phrases_from_shared_markup_parser():
    glamm = 'Sure, <p> the red circle </p> [SEG] and <p> a square </p> [SEG].'
    assert answer_phrases(glamm, 'glamm') == ['the red circle', 'a square']
    llava_g = 'It is <g_s> the blue triangle <g_e> <seg> .'
    assert answer_phrases(llava_g, 'llava_g') == ['the blue triangle']
    # a bare grounding token stands for the asked expression
    assert answer_phrases('Sure, it is [SEG].', 'glamm',
                          'small circle') == ['small circle']
    assert answer_phrases('Sure, it is [SEG].', 'glamm') == []
    assert answer_phrases('No idea.', 'glamm', 'small circle') == []


# ------------------------------------------------------------------ BERT
@pytest.fixture(scope='module')
def bert_dir(tmp_path_factory):
    return build_tiny_bert(str(tmp_path_factory.mktemp('bert') / 'bert'),
                           hidden_size=32)


def test_mmdet_bert_wrapper_breaks_on_transformers5(bert_dir):
    """Why LocalBertModel exists (if this starts passing, mmdet got fixed
    and the shim can go)."""
    from mmdet.models.language_models import BertModel
    model = BertModel(name=bert_dir, pad_to_max=False)
    with pytest.raises(AttributeError, match='batch_encode_plus'):
        model(['red circle'])


def test_local_bert_sub_sentences_are_encoded_independently(bert_dir):
    from transformers import AutoTokenizer, BertModel
    lm = LocalBertModel(name=bert_dir, pad_to_max=False,
                        use_sub_sentence_represent=True,
                        special_tokens_list=['[CLS]', '[SEP]', '.', '?'])
    tok = AutoTokenizer.from_pretrained(bert_dir)
    assert tok.convert_ids_to_tokens(
        tok('red circle. square.')['input_ids']) == [
            '[CLS]', 'red', 'circle', '.', 'square', '.', '[SEP]']
    out = lm(['red circle. square.', 'square. red circle.'])
    assert out['masks'].shape == (2, 7, 7)
    assert out['position_ids'][0].tolist() == [0, 0, 1, 2, 0, 1, 0]
    # 'red circle .' : tokens 1..3 of caption 0 and 3..5 of caption 1
    a, b = out['embedded'][0, 1:4], out['embedded'][1, 3:6]
    assert torch.allclose(a, b, atol=1e-5)
    # and both equal HF BERT on that sub-sentence alone (positions 0, 1, 2)
    hf = BertModel.from_pretrained(bert_dir, add_pooling_layer=False).eval()
    ids = torch.tensor([tok.convert_tokens_to_ids(['red', 'circle', '.'])])
    alone = hf(input_ids=ids, position_ids=torch.arange(3)[None],
               token_type_ids=torch.zeros_like(ids)).last_hidden_state[0]
    assert torch.allclose(a, alone, atol=1e-5)
    # a plain (2D) mask zeroes padded tokens, as mmdet's encoder does
    plain = LocalBertModel(name=bert_dir, pad_to_max=False)
    got = plain(['red circle', 'square'])
    assert got['masks'].tolist()[1] == [1, 1, 1, 0]
    assert torch.all(got['embedded'][1, 3] == 0)


# ------------------------------------------------------------- converter
def _fake_refcoco(root):
    ann = root / 'annotations'
    ann.mkdir(parents=True)
    coco = dict(
        images=[dict(id=5, file_name='5.png', height=64, width=64)],
        annotations=[
            dict(id=1, image_id=5, bbox=[2., 3., 10., 20.], category_id=1),
            dict(id=2, image_id=5, bbox=[30., 30., 4., 4.], category_id=2)
        ],
        categories=[dict(id=1, name='circle'), dict(id=2, name='square')])
    (ann / 'instances.json').write_text(json.dumps(coco))
    refs = [
        dict(ref_id=0, ann_id=1, image_id=5, split='train',
             category_id=1, sentences=[
                 dict(sent='red circle', sent_id=0),
                 dict(sent='Circle  left of the square', sent_id=1)]),
        dict(ref_id=1, ann_id=2, image_id=5, split='train', category_id=2,
             sentences=[dict(sent='square', sent_id=2)]),
    ]
    with open(ann / 'refs(unc).p', 'wb') as f:
        pickle.dump(refs, f)
    return refs


def test_refcoco_to_odvg_and_mdetr_records(tmp_path):
    refs = _fake_refcoco(tmp_path)
    recs = odvg_records(str(tmp_path), 'train')
    # two rounds (ref 0 has two sentences); ref 1's one sentence repeats
    assert [r['grounding']['caption'] for r in recs] == [
        'red circle. square.', 'circle left of the square. square.']
    g = recs[1]['grounding']['regions']
    assert [r['tokens_positive'] for r in g] == [[[0, 25]], [[27, 33]]]
    assert g[0]['bbox'] == [2., 3., 12., 23.] and g[1]['phrase'] == 'square'
    assert recs[0]['filename'] == '5.png'
    mdetr = mdetr_refexp(str(tmp_path), 'train')
    assert [im['caption'] for im in mdetr['images']] == [
        'red circle', 'Circle  left of the square', 'square']
    assert [a['image_id'] for a in mdetr['annotations']] == [0, 1, 2]
    assert mdetr['annotations'][2]['bbox'] == [30., 30., 4., 4.]
    assert {im['dataset_name'] for im in mdetr['images']} == {'refcoco'}
    with pytest.raises(ValueError, match="split 'val'"):
        odvg_records(str(tmp_path), 'val')
    refs[1]['ann_id'] = 99
    with open(tmp_path / 'annotations' / 'refs(unc).p', 'wb') as f:
        pickle.dump(refs, f)
    with pytest.raises(
            GroundingDataError,
            match=r"file='refs\(unc\).p', record=1, field='ann_id'"):
        odvg_records(str(tmp_path), 'train')


# ----------------------------------------------------------------- model
def test_configs_parse_with_custom_imports():
    det = Config.fromfile(str(DET_CFG))
    assert det.model.type == 'GroundingDINO'
    assert det.model.backbone.init_cfg is None  # nothing to download
    assert det.model.language_model.type == 'mmgrounding.LocalBertModel'
    assert det.model.bbox_head.contrastive_cfg.max_text_len == \
        det.model.language_model.max_tokens
    direct = Config.fromfile(str(DIRECT_CFG))
    assert direct.custom_imports.imports == [
        'projects.grounding_dino_head.grounding_dino_head']
    assert direct.model.mode == 'direct' and direct.model.lmm is None
    lmm = Config.fromfile(str(LMM_CFG))
    assert lmm.model.mode == 'lmm' and lmm.model.lmm.config.endswith(
        '1000it_synthetic.py')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """24-image world + the tiny BERT at the config's path + a random
    GroundingDINO checkpoint."""
    root = tmp_path_factory.mktemp('gdino_world')
    generate_world(str(root / 'data' / 'synthetic'), num_images=24, seed=1)
    build_tiny_bert(str(root / 'work_dirs/grounding_dino_head/tiny_bert'))
    from mmdet.apis import init_detector
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        init_default_scope('mmgrounding')
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope('mmdet'):
            det = init_detector(str(DET_CFG), None, device='cpu')
        with torch.no_grad():
            det.text_feat_map.bias.fill_(0.125)  # to find again
        torch.save(dict(state_dict=det.state_dict()), str(root / 'det.pth'))
    return root


def _image(world, name='000000000001.png'):
    img = mmcv.imread(str(world / 'data/synthetic/images' / name))
    return img, torch.from_numpy(img).permute(2, 0, 1).contiguous()


def _reference(model, img, text, tokens_positive):
    """The detector alone, through mmdet's own test pipeline."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        data = model._det_pipeline(dict(img=img, img_id=0))
        data['data_samples'].set_metainfo(
            dict(text=text, custom_entities=True,
                 tokens_positive=tokens_positive))
        return model.detector.test_step(
            dict(inputs=[data['inputs']],
                 data_samples=[data['data_samples']]))[0].pred_instances


@pytest.mark.slow  # ~6 s each (keeps make test-fast < 5 min)
def test_direct_mode_is_detector_rec_top_boxes(world, monkeypatch):
    monkeypatch.chdir(world)
    model = MODELS.build(dict(
        type='GroundingDINOPhraseGrounder', mode='direct',
        detector=dict(config=str(DET_CFG), checkpoint=str(world / 'det.pth')),
        rec_topk=3))
    assert type(model.detector).__name__ == 'GroundingDINO'
    assert torch.all(model.detector.text_feat_map.bias == 0.125)
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.detector.training
    with pytest.raises(RuntimeError, match='only "predict"'):
        model(None, None, mode='loss')
    img, chw = _image(world)
    ref = _reference(model, img, 'small red circle', -1)
    order = torch.argsort(ref.scores, descending=True)[:3]
    out = model.predict([chw, chw], [
        DetDataSample(metainfo=dict(img_id=1, text='small red circle')),
        DetDataSample(metainfo=dict(img_id=2, text='square'))])
    pred = out[0].pred_instances
    assert torch.allclose(pred.bboxes, ref.bboxes[order])
    assert torch.allclose(pred.scores, ref.scores[order])
    assert pred.labels.tolist() == [0, 0, 0]
    assert out[0].pred_phrases == ['small red circle']
    assert out[1].pred_phrases == ['square']
    # batching in mmdet's GroundingDINO is not neutral (why detect() runs
    # one image per call): next to a shorter, padded prompt the same image
    # and text score differently
    with DefaultScope.overwrite_default_scope('mmdet'):
        both = []
        for text in ('small red circle', 'square'):
            d = model._det_pipeline(dict(img=img, img_id=0))
            d['data_samples'].set_metainfo(
                dict(text=text, custom_entities=True, tokens_positive=-1))
            both.append(d)
        batched = model.detector.test_step(
            dict(inputs=[d['inputs'] for d in both],
                 data_samples=[d['data_samples'] for d in both]))
    assert not torch.allclose(batched[0].pred_instances.scores.sort()[0],
                              ref.scores.sort()[0])


@pytest.mark.slow  # ~6 s each (keeps make test-fast < 5 min)
def test_lmm_mode_grounds_answer_phrases(world, monkeypatch):
    monkeypatch.chdir(world)
    lmm_cfg = Config.fromfile(str(ROOT / 'configs/glamm/'
                                  'glamm_llama-tiny_clip-tiny_sam-tiny_'
                                  '1000it_synthetic.py'))
    with pytest.warns(UserWarning, match='randomly initialized'):
        model = MODELS.build(dict(
            type='GroundingDINOPhraseGrounder', mode='lmm',
            detector=dict(config=str(DET_CFG),
                          checkpoint=str(world / 'det.pth')),
            lmm=dict(config=lmm_cfg, checkpoint=None), max_new_tokens=4))
    assert model.lmm.answer_style == 'glamm'
    img, chw = _image(world)
    # the random LMM really answers (whatever it says) ...
    texts = model.answer([img], ['red circle'])
    assert len(texts) == 1 and isinstance(texts[0], str)
    # ... and its answer's phrases are what the detector grounds: fix the
    # answer to see where each phrase's box comes from
    answer = 'Sure, <p> the red circle </p> [SEG] and <p> a square </p> [SEG].'
    asked = []

    def fixed(images, expressions):
        asked.extend(expressions)
        return [answer, 'Sure, it is [SEG].', 'I cannot see it.']

    monkeypatch.setattr(model, 'answer', fixed)
    samples = [DetDataSample(metainfo=dict(img_id=i, text=t))
               for i, t in enumerate(['red circle', 'blue square', 'x'])]
    out = model.predict([chw, chw, chw], samples)
    assert asked == ['red circle', 'blue square', 'x']
    assert out[0].pred_phrases == ['the red circle', 'a square']
    assert out[0].pred_text == answer
    ref = _reference(model, img, 'the red circle. a square',
                     [[[0, 14]], [[16, 24]]])
    pred = out[0].pred_instances
    assert pred.labels.tolist() == [0, 1]
    for k in range(2):  # the best-scored box the detector gave phrase k
        mine = ref.scores.clone()
        mine[ref.labels != k] = -1
        best = int(torch.argmax(mine))
        assert torch.allclose(pred.bboxes[k], ref.bboxes[best])
        assert pred.scores[k] == pytest.approx(float(ref.scores[best]))
    # bare [SEG] grounds the asked expression (REC mode of one entity)
    assert out[1].pred_phrases == ['blue square']
    assert len(out[1].pred_instances) == 1
    # no grounding token: nothing to ground, no box
    assert out[2].pred_phrases == [] and len(out[2].pred_instances) == 0


def test_grounder_rejects_bad_options():
    with pytest.raises(ValueError, match='mode must be one of'):
        GroundingDINOPhraseGrounder(detector={}, mode='rec')
    with pytest.raises(ValueError, match='needs an lmm'):
        GroundingDINOPhraseGrounder(detector={}, mode='lmm')
    with pytest.raises(ValueError, match='expr'):
        GroundingDINOPhraseGrounder(detector={}, mode='direct',
                                    question='Where is it?')
    with pytest.raises(ValueError, match='rec_topk'):
        GroundingDINOPhraseGrounder(detector={}, mode='direct', rec_topk=0)
