"""GroundingInferencer on the tiny GLaMM config and a 24-image synthetic world.

The model is random (weights=None). To make it answer with grounded phrases,
four tokens get large orthogonal input embeddings d_k and the LM head maps
d_k to the next token of the cycle ``<p> a </p> [SEG]`` (all other head rows
zero), so greedy answers read ``<p>a</p>[SEG]<p>a...``: phrases, [SEG] tokens
and masks go through the whole path.
"""
import os
from pathlib import Path

import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmgrounding.apis import GroundingInferencer
from mmgrounding.datasets.synthetic import generate_world
from mmgrounding.testing import load_script

os.environ.setdefault('HF_HUB_OFFLINE', '1')

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / ('configs/glamm/'
              'glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py')
IMG1 = 'data/synthetic/images/000000000001.png'
IMG2 = 'data/synthetic/images/000000000002.png'
MAX_NEW = 6


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('inferencer_world')
    generate_world(str(root / 'data' / 'synthetic'), num_images=24, seed=1)
    return root


@pytest.fixture(scope='module')
def inferencer(world):
    root = world
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # the config's relative data/synthetic paths
        cfg = Config.fromfile(str(TINY))
        cfg.model.generation_cfg.max_new_tokens = MAX_NEW
        torch.manual_seed(0)
        with pytest.warns(UserWarning, match='randomly initialized'):
            inf = GroundingInferencer(cfg, weights=None, device='cpu')
        tok = inf.model.tokenizer
        ids = [tok(t, add_special_tokens=False).input_ids[0]
               for t in ('<p>', 'a', '</p>', '[SEG]')]
        lm = inf.model.language_model.model
        with torch.no_grad():
            head = lm.get_output_embeddings()
            emb = lm.get_input_embeddings()
            dirs = torch.linalg.qr(torch.randn(head.weight.shape[1], 4))[0].T
            head.weight.zero_()
            for k, tok_id in enumerate(ids):
                emb.weight[tok_id] = 4 * dirs[k]
                head.weight[ids[(k + 1) % 4]] = 4 * dirs[k]
        yield inf


def _check_result(res, h, w):
    assert set(res) >= {'text', 'caption', 'phrases', 'masks', 'boxes',
                        'scores'}
    n_seg = res['text'].count('[SEG]')
    assert len(res['masks']) == len(res['boxes']) == len(res['scores']) \
        == n_seg
    for mask, box, score in zip(res['masks'], res['boxes'], res['scores']):
        assert isinstance(mask, np.ndarray) and mask.dtype == bool
        assert mask.shape == (h, w)
        assert len(box) == 4 and 0.0 <= score <= 1.0
        if mask.any():
            ys, xs = np.nonzero(mask)
            assert box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert '[SEG]' not in res['caption']
    assert len(res['phrases']) == res['text'].count('</p>')
    return n_seg


def test_output_structure_and_original_size_masks(inferencer):
    img = mmcv.imread(IMG2)[:96]  # 96 x 128: not the model's square size
    out = inferencer([IMG1, img], 'Describe the image.', task='gcg',
                     batch_size=2)
    assert len(out) == 2
    n_seg = _check_result(out[0], 128, 128) + _check_result(out[1], 96, 128)
    assert n_seg > 0, 'the rewired LM head should emit [SEG] tokens'
    tok = inferencer.model.tokenizer
    for res in out:
        assert 0 < len(tok(res['text'], add_special_tokens=False).input_ids) \
            <= MAX_NEW
        assert res['phrases'] and set(res['phrases']) == {'a'}
        assert '<p>' not in res['caption'] and 'a' in res['caption'].split()


def test_batch_equals_one_by_one(inferencer):
    images = [IMG1, IMG2]
    prompts = ['What is in this image?',
               'Could you describe every shape you can see in it?']
    batched = inferencer(images, prompts, batch_size=2)
    single = [inferencer(i, p)[0] for i, p in zip(images, prompts)]
    assert sum(r['text'].count('[SEG]') for r in batched) > 0
    for b, s in zip(batched, single):
        assert b['text'] == s['text'] and b['phrases'] == s['phrases']
        assert len(b['masks']) == len(s['masks'])
        for mb, ms in zip(b['masks'], s['masks']):
            assert (mb != ms).mean() < 1e-3
        np.testing.assert_allclose(b['scores'], s['scores'], atol=1e-4)


def test_refseg_one_mask_per_expression(inferencer):
    model = inferencer.model
    model.refseg_teacher_forcing = False  # the call must force it anyway
    try:
        exprs = ['the red circle', 'blue square on the left']
        out = inferencer(IMG1, exprs, task='refseg', batch_size=2,
                         mask_format='rle')
    finally:
        assert model.refseg_teacher_forcing is False  # restored
        model.refseg_teacher_forcing = True
    for res, expr in zip(out, exprs):
        assert res['phrases'] == [expr]
        assert res['text'].count('[SEG]') == 1
        assert len(res['masks']) == 1
        rle = res['masks'][0]
        assert rle['size'] == [128, 128] and isinstance(rle['counts'], str)
        assert mask_utils.decode(dict(rle, counts=rle['counts'].encode())
                                 ).shape == (128, 128)
    samples = inferencer(IMG1, 'red circle', task='refseg',
                         return_datasamples=True)
    assert isinstance(samples[0], DetDataSample)
    assert 'Can you segment the red circle in this image?' in \
        samples[0].metainfo['prompt']
    assert len(samples[0].pred_instances) == 1
    with pytest.raises(ValueError, match='referring expression'):
        inferencer(IMG1, '  ', task='refseg')


def test_bbox_prompts(inferencer):
    out = inferencer(IMG1, 'What is in <bbox> next to <bbox>?',
                     boxes=[[10, 10, 60, 60], [64, 20, 120, 90]])
    assert len(out) == 1 and out[0]['text']
    one = inferencer([IMG1, IMG2], 'Describe <bbox>.',
                     boxes=[[[10, 10, 60, 60]], [[0, 0, 128, 128]]],
                     batch_size=2)
    assert len(one) == 2
    with pytest.raises(ValueError, match=r'1 region placeholder.*2 box'):
        inferencer(IMG1, 'What is in <bbox>?',
                   boxes=[[10, 10, 60, 60], [0, 0, 5, 5]])
    with pytest.raises(ValueError, match=r'1 region placeholder.*0 box'):
        inferencer(IMG1, 'What is in <bbox>?')
    with pytest.raises(ValueError, match=r'0 region placeholder.*1 box'):
        inferencer(IMG1, 'What is this?', boxes=[10, 10, 60, 60])
    with pytest.raises(ValueError, match='invalid xyxy'):
        inferencer(IMG1, 'What is in <bbox>?', boxes=[60, 10, 10, 60])
    with pytest.raises(ValueError, match='outside the 128x128 image'):
        inferencer(IMG1, 'What is in <bbox>?', boxes=[10, 10, 300, 60])


def test_ndarray_input_equals_path_input(inferencer):
    from_path = inferencer(IMG1, 'Describe the image.', task='gcg')[0]
    from_array = inferencer(mmcv.imread(IMG1), 'Describe the image.',
                            task='gcg')[0]
    assert from_path['text'] == from_array['text']
    assert len(from_path['masks']) == len(from_array['masks'])
    for a, b in zip(from_path['masks'], from_array['masks']):
        assert np.array_equal(a, b)


def test_out_dir_writes_pngs(inferencer, tmp_path):
    out = inferencer([IMG1, mmcv.imread(IMG2)], 'Describe the image.',
                     task='gcg', out_dir=str(tmp_path), batch_size=2)
    files = sorted((tmp_path / 'vis').glob('*.png'))
    assert len(files) == 2
    assert sorted(r['vis_file'] for r in out) == [str(f) for f in files]
    for f in files:
        img = mmcv.imread(str(f))
        assert img is not None and img.shape[0] >= 128 and img.shape[1] >= 128


def test_generation_overrides_are_temporary(inferencer):
    before = dict(inferencer.model.generation_cfg)
    out = inferencer(IMG1, 'Describe the image.', max_new_tokens=2,
                     do_sample=True, temperature=0.7, seed=3)
    tok = inferencer.model.tokenizer
    assert len(tok(out[0]['text'], add_special_tokens=False).input_ids) <= 2
    assert inferencer.model.generation_cfg == before


def test_bad_arguments(inferencer):
    with pytest.raises(ValueError, match='task must be one of'):
        inferencer(IMG1, 'hi', task='caption')
    with pytest.raises(ValueError, match='2 images but 3 prompts'):
        inferencer([IMG1, IMG2], ['a', 'b', 'c'])
    with pytest.raises(ValueError, match='needs a prompt'):
        inferencer(IMG1)
    with pytest.raises(FileNotFoundError, match='no image file'):
        inferencer('missing.png', 'hi')
    with pytest.raises(ValueError, match='mask_format'):
        inferencer(IMG1, 'hi', mask_format='polygon')


def test_weights_and_demo_cli(inferencer, world, tmp_path, monkeypatch,
                              capsys):
    """A saved checkpoint reproduces the rewired model's answer through
    ``demo/image_demo.py`` (a freshly built model is initialised
    differently, so equality shows the weights were loaded)."""
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict=inferencer.model.state_dict(), meta=dict()),
               ckpt)
    expected = inferencer(IMG1, 'the red circle', task='refseg')[0]
    demo = load_script('demo/image_demo.py')
    monkeypatch.chdir(world)
    torch.manual_seed(123)
    result = demo.main([
        IMG1, str(TINY), '--weights', str(ckpt), '--task', 'refseg',
        '--prompt', 'the red circle', '--out-dir', str(tmp_path / 'out'),
        '--max-new-tokens', str(MAX_NEW)
    ])
    printed = capsys.readouterr().out
    assert result['text'] == expected['text'] and result['phrases'] == \
        ['the red circle']
    assert np.array_equal(result['masks'][0], expected['masks'][0])
    assert 'answer:  Sure, it is [SEG].' in printed
    assert "mask 0: 'the red circle'" in printed
    assert Path(result['vis_file']).is_file()
    with pytest.raises(SystemExit):
        demo.parse_args([IMG1, str(TINY), '--box', '1', '2', '3'])
