"""OpenSeeDGroundingHead against the grounding-head contract (tiny sizes)."""
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

from mmgrounding.models.grounding_heads import (OpenSeeDGroundingHead,
                                                tiny_openseed_head_cfg)
from mmgrounding.registry import MODELS
from mmgrounding.structures import GroundingDataError

G = 128
PROMPT_DIM = 24
FINAL_KEYS = {'loss_cls', 'loss_mask', 'loss_dice', 'loss_bbox', 'loss_iou'}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core box two threads per process
    oversubscribe the cores and make these small ops ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build_head(**kwargs):
    torch.manual_seed(0)
    cfg = tiny_openseed_head_cfg(PROMPT_DIM)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def make_sample(ori_hw, boxes, ids, img_id):
    """A DetDataSample with rectangle objects and token -> object ids."""
    h, w = ori_hw
    masks = np.zeros((len(boxes), h, w), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        masks[k, y1:y2, x1:x2] = 1
    sample = DetDataSample(
        metainfo=dict(img_id=img_id, ori_shape=(h, w), source='unit'))
    sample.gt_objects = InstanceData(
        masks=BitmapMasks(masks, h, w),
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.zeros(len(boxes), dtype=torch.long))
    sample.grounding_instance_ids = ids
    return sample


def resized(ori_hw):
    h, w = ori_hw
    scale = G / max(h, w)
    return int(round(h * scale)), int(round(w * scale))


def make_batch(specs, seed=0):
    """specs: list of (ori_hw, boxes, ids). Pixels are random in the pad."""
    gen = torch.Generator().manual_seed(seed)
    samples = [make_sample(hw, b, i, n) for n, (hw, b, i) in enumerate(specs)]
    sizes = torch.tensor([resized(hw) for hw, _, _ in specs])
    pixels = torch.zeros(len(specs), 3, G, G)
    for n, (h, w) in enumerate(sizes.tolist()):
        pixels[n, :, :h, :w] = torch.randn(3, h, w, generator=gen)
    num = max([len(i) for _, _, i in specs] + [0])
    prompts = torch.zeros(len(specs), num, PROMPT_DIM)
    mask = torch.zeros(len(specs), num, dtype=torch.bool)
    for n, (_, _, ids) in enumerate(specs):
        prompts[n, :len(ids)] = torch.randn(len(ids), PROMPT_DIM,
                                            generator=gen)
        mask[n, :len(ids)] = True
    inputs = dict(pixels=pixels, sizes=sizes, prompt_mask=mask)
    return prompts, inputs, samples


SPECS = [
    # 100 x 80 image, 2 objects; token 0 -> both, token 1 -> object 1,
    # token 2 -> object 0
    ((100, 80), [[10, 10, 40, 50], [45, 60, 75, 95]], [[0, 1], [1], [0]]),
    # 64 x 128 image, 1 object referred to by 1 token
    ((64, 128), [[20, 8, 100, 40]], [[0]]),
]


def test_contract_attributes():
    head = build_head()
    assert OpenSeeDGroundingHead.target_kind == 'instances'
    assert head.prompt_dim == PROMPT_DIM


def test_loss_keys_scalars_and_backbone_gradient():
    head = build_head()
    prompts, inputs, samples = make_batch(SPECS)
    prompts.requires_grad_(True)
    losses = head.loss(prompts, inputs, samples)
    expected = set(FINAL_KEYS)
    for prefix in ['enc_', 'd0.', 'd1.']:  # 2 decoder layers
        expected |= {prefix + k for k in FINAL_KEYS}
    assert set(losses) == expected
    for key, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), key
    assert losses['loss_bbox'] > 0 and losses['loss_mask'] > 0
    sum(losses.values()).backward()
    grad = head.backbone.patch_embed.projection.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert head.similarity.class_embed.grad.abs().sum() > 0
    assert prompts.grad.abs().sum() > 0


def test_zero_token_batch_gives_connected_zero_losses():
    head = build_head()
    prompts, inputs, samples = make_batch([((90, 128), [], []),
                                           ((128, 60), [], [])])
    assert prompts.shape == (2, 0, PROMPT_DIM)
    losses = head.loss(prompts, inputs, samples)
    assert FINAL_KEYS <= set(losses)
    for value in losses.values():
        assert value.item() == 0.0
    sum(losses.values()).backward()
    for name, param in head.named_parameters():
        assert param.grad is not None, name


def test_bad_instance_ids_raise_grounding_data_error():
    head = build_head()
    prompts, inputs, samples = make_batch(SPECS)
    samples[1].grounding_instance_ids = [[3]]
    with pytest.raises(GroundingDataError, match='out of range'):
        head.loss(prompts, inputs, samples)
    samples[1].grounding_instance_ids = [[0], [0]]
    with pytest.raises(GroundingDataError, match='grounding_instance_ids'):
        head.loss(prompts, inputs, samples)


def test_predict_fields_and_original_size():
    head = build_head().eval()
    prompts, inputs, samples = make_batch(SPECS)
    results = head.predict(prompts, inputs, samples)
    assert len(results) == 2
    for res, (hw, _, ids) in zip(results, SPECS):
        assert isinstance(res, InstanceData)
        assert res.masks.dtype == torch.bool
        assert tuple(res.masks.shape) == (len(ids), ) + hw
        assert res.bboxes.shape == (len(ids), 4)
        assert res.scores.shape == (len(ids), )
        assert res.labels.tolist() == list(range(len(ids)))
        assert ((res.scores >= 0) & (res.scores <= 1)).all()
        h, w = hw
        assert (res.bboxes[:, 0::2] >= 0).all()
        assert (res.bboxes[:, 0::2] <= w).all()
        assert (res.bboxes[:, 1::2] <= h).all()
    canvas = head.predict(prompts, inputs, samples, rescale=False)
    assert tuple(canvas[0].masks.shape) == (3, G, G)
    # original boxes = canvas boxes / resize scale (before clamping)
    scale = resized(SPECS[1][0])[1] / SPECS[1][0][1]
    expected = (canvas[1].bboxes / scale)
    expected[:, 0::2] = expected[:, 0::2].clamp(0, 128)
    expected[:, 1::2] = expected[:, 1::2].clamp(0, 64)
    torch.testing.assert_close(results[1].bboxes, expected)


def test_predict_reuses_given_features():
    head = build_head().eval()
    prompts, inputs, samples = make_batch(SPECS)
    feats = head.extract_feat(inputs['pixels'])
    a = head.predict(prompts, dict(inputs, feats=feats), samples)
    b = head.predict(prompts, inputs, samples)
    torch.testing.assert_close(a[0].bboxes, b[0].bboxes)


def _assert_same(batched, single):
    assert batched.labels.tolist() == single.labels.tolist()
    torch.testing.assert_close(batched.bboxes, single.bboxes, atol=1e-4,
                               rtol=1e-4)
    torch.testing.assert_close(batched.scores, single.scores, atol=1e-5,
                               rtol=1e-4)
    assert batched.masks.shape == single.masks.shape
    # logits within float noise of 0 may flip
    assert (batched.masks != single.masks).float().mean() < 1e-3


@pytest.mark.parametrize('rule', ['top1', 'softmax'])
def test_batched_equals_unbatched(rule):
    head = build_head(predict_rule=rule, softmax_threshold=0.05).eval()
    prompts, inputs, samples = make_batch(SPECS)
    batched = head.predict(prompts, inputs, samples)
    for i in range(2):
        n = int(inputs['prompt_mask'][i].sum())
        single = head.predict(
            prompts[i:i + 1, :n],
            dict(pixels=inputs['pixels'][i:i + 1],
                 sizes=inputs['sizes'][i:i + 1],
                 prompt_mask=inputs['prompt_mask'][i:i + 1, :n]),
            samples[i:i + 1])[0]
        _assert_same(batched[i], single)


def test_softmax_rule_keeps_queries_above_threshold():
    head = build_head(predict_rule='softmax', softmax_threshold=0.2).eval()
    prompts, inputs, samples = make_batch(SPECS)
    results = head.predict(prompts, inputs, samples)
    for res in results:
        assert (res.scores > 0.2).all()
        # at most 4 queries can exceed 0.2 of a softmax
        for label in res.labels.unique():
            assert (res.labels == label).sum() <= 4
    with pytest.raises(ValueError, match='predict_rule'):
        build_head(predict_rule='best')


def test_tiny_head_overfits_one_batch():
    head = build_head()
    prompts, inputs, samples = make_batch(SPECS)
    optim = torch.optim.AdamW(head.parameters(), lr=1e-3)
    totals = []
    for _ in range(15):
        losses = head.loss(prompts, inputs, samples)
        total = sum(losses.values())
        optim.zero_grad()
        total.backward()
        optim.step()
        totals.append(total.item())
    first, last = np.mean(totals[:3]), np.mean(totals[-3:])
    assert last < first / 2, (first, last)


def test_full_size_parameter_count():
    # Design note §7: Swin-T 27.52 M, pixel decoder 10.49 M, decoder side
    # 16.60 M incl. class_embed AND the dead lang_mapper [4096, 256]
    # (1.05 M), total 54.62 M. lang_mapper is not built here (only a
    # 0-weight term uses it officially), so the head has 54.62 - 1.05 M.
    # (built on CPU: mmdet's Swin calls .item() while building, which the
    # meta device refuses)
    head = OpenSeeDGroundingHead(prompt_dim=4096)

    def count(module):
        return sum(p.numel() for p in module.parameters()) / 1e6

    backbone = count(head.backbone)
    pixel_decoder = count(head.pixel_decoder)
    decoder_side = count(head) - backbone - pixel_decoder
    lang_mapper = 4096 * 256 / 1e6
    assert backbone == pytest.approx(27.52, abs=0.01)
    assert pixel_decoder == pytest.approx(10.49, abs=0.01)
    assert decoder_side + lang_mapper == pytest.approx(16.60, abs=0.01)
    assert count(head) + lang_mapper == pytest.approx(54.62, abs=0.01)
    assert head.similarity.class_embed.shape == (256, 4096)
    assert head.num_queries == 300 and head.decoder.num_layers == 9


def test_head_runs_fp32_under_bf16_autocast():
    head = build_head()
    prompts, inputs, samples = make_batch(SPECS)
    torch.manual_seed(1)
    ref = head.loss(prompts, inputs, samples)
    torch.manual_seed(1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = head.loss(prompts.bfloat16(), inputs, samples)
        preds = head.eval().predict(prompts.bfloat16(), inputs, samples)
        mask_features, levels = head.extract_feat(inputs['pixels'])
    # autocast would give bf16 convs / linears; the head opts out
    assert mask_features.dtype == torch.float32
    assert all(level.dtype == torch.float32 for level in levels)
    for key in ref:
        assert got[key].dtype == torch.float32
    # the only difference is the bf16 rounding of the prompts
    assert got['loss_bbox'].item() == pytest.approx(ref['loss_bbox'].item(),
                                                    rel=0.05)
    assert preds[0].bboxes.dtype == torch.float32


@pytest.mark.parametrize('rule', ['top1', 'softmax'])
def test_predict_sample_without_tokens_gives_no_instances(rule):
    head = build_head(predict_rule=rule).eval()
    prompts, inputs, samples = make_batch(SPECS + [((50, 70), [], [])])
    results = head.predict(prompts, inputs, samples)
    assert tuple(results[2].masks.shape) == (0, 50, 70)
    assert results[2].bboxes.shape == (0, 4)
    assert len(results[2].scores) == len(results[2].labels) == 0
    if rule == 'top1':
        assert len(results[0]) == 3 and len(results[1]) == 1


def test_optional_prompt_norm():
    # BN1d over the real tokens: trains, and at eval (running statistics)
    # batched == unbatched still holds; padded columns stay excluded.
    head = build_head(prompt_norm=dict(type='BN1d'))
    prompts, inputs, samples = make_batch(SPECS)
    losses = head.loss(prompts * 50., inputs, samples)
    sum(losses.values()).backward()
    assert head.prompt_norm.weight.grad is not None
    head.eval()
    batched = head.predict(prompts * 50., inputs, samples)
    single = head.predict(
        prompts[1:, :1] * 50.,
        dict(pixels=inputs['pixels'][1:], sizes=inputs['sizes'][1:],
             prompt_mask=inputs['prompt_mask'][1:, :1]), samples[1:])[0]
    _assert_same(batched[1], single)
    # scaling the states does not change normalised logits much with LN
    ln = build_head(prompt_norm=dict(type='LN')).eval()
    a = ln.predict(prompts, inputs, samples)[0].scores
    b = ln.predict(prompts * 50., inputs, samples)[0].scores
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    plain = build_head().eval()
    c = plain.predict(prompts * 50., inputs, samples)[0].scores
    assert not torch.allclose(a, c, atol=1e-3)


def test_selected_queries_and_references_are_detached():
    # Only the encoder-proposal set may reach memory_trans_fc: the decoder
    # starts from DETACHED content and boxes of the selected proposals.
    head = build_head()
    prompts, inputs, _ = make_batch(SPECS)
    feats = head.extract_feat(inputs['pixels'])
    out = head.forward_queries(feats, prompts, inputs['prompt_mask'])
    sets = dict(out['sets'])
    later = sum(sets[k]['logits'].sum() + sets[k]['boxes'].sum() +
                sets[k]['masks'].sum() for k in ('', 'd0.', 'd1.'))
    later.backward(retain_graph=True)
    assert head.memory_trans_fc.weight.grad is None
    assert head.pixel_decoder.mask_feature.weight.grad is not None
    enc = sets['enc_']
    (enc['logits'].sum() + enc['boxes'].sum()).backward()
    assert head.memory_trans_fc.weight.grad.abs().sum() > 0
    # the initial prediction's boxes are the detached references
    assert not sets['d0.']['boxes'].requires_grad


def test_padded_columns_never_influence_selection_or_outputs():
    head = build_head().eval()
    prompts, inputs, samples = make_batch(SPECS)
    ref = head.predict(prompts, inputs, samples)
    noisy = prompts.clone()
    noisy[1, 1:] = torch.randn(2, PROMPT_DIM) * 100  # padding of sample 1
    got = head.predict(noisy, inputs, samples)
    for a, b in zip(ref, got):
        torch.testing.assert_close(a.bboxes, b.bboxes)
        assert torch.equal(a.masks, b.masks)


def test_host_counts_and_sizes_give_the_same_losses():
    """The base passes host copies (``prompt_counts``, ``sizes_host``) so
    the head reads nothing back from the device; the losses must not
    change. The hand-written counts of SPECS are 3 and 1 tokens."""
    head = build_head()
    prompts, inputs, samples = make_batch(SPECS)
    torch.manual_seed(0)
    plain = head.loss(prompts, inputs, samples)
    host = dict(inputs, prompt_counts=[3, 1],
                sizes_host=[list(resized(hw)) for hw, _, _ in SPECS])
    torch.manual_seed(0)
    given = head.loss(prompts, host, samples)
    assert set(plain) == set(given)
    for key in plain:
        torch.testing.assert_close(given[key], plain[key], msg=key)
