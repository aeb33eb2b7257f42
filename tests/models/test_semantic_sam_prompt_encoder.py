"""SemanticSAMPromptEncoder (LLaVA-G visual prompts, tiny sizes)."""
import math

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

from mmgrounding.models.prompt_encoders import (
    SemanticSAMPromptEncoder, tiny_semantic_sam_prompt_encoder_cfg)
from mmgrounding.registry import MODELS
from mmgrounding.structures import GroundingDataError

G = 128
LM_DIM = 24


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (the shared 2-core box; see the OpenSeeD tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(**kwargs):
    torch.manual_seed(0)
    cfg = tiny_semantic_sam_prompt_encoder_cfg(LM_DIM)
    cfg.update(kwargs)
    enc = MODELS.build(cfg)
    enc.init_weights()
    return enc


def view(batch=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, G, G, generator=gen)


def click(x, y, inst=0):
    return dict(type='click', points=torch.tensor([[x, y]]), instance_id=inst)


def box(x1, y1, x2, y2, inst=0):
    return dict(type='box', box=torch.tensor([x1, y1, x2, y2]),
                instance_id=inst)


def make_sample(ori_hw, boxes, img_id, mask_valid=None):
    """Rectangle objects (original pixels) as ``gt_objects``."""
    h, w = ori_hw
    masks = np.zeros((len(boxes), h, w), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        masks[k, y1:y2, x1:x2] = 1
    sample = DetDataSample(
        metainfo=dict(img_id=img_id, ori_shape=(h, w), source='unit'))
    objects = InstanceData(
        masks=BitmapMasks(masks, h, w),
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.zeros(len(boxes), dtype=torch.long))
    if mask_valid is not None:
        objects.mask_valid = torch.tensor(mask_valid)
    sample.gt_objects = objects
    return sample


# ----------------------------------------------------------------- shapes
@pytest.mark.parametrize('training', [True, False])
def test_output_shapes_per_prompt_type(training):
    enc = build()
    enc.train(training)
    stroke = torch.tensor([[20., 30.], [40., 34.], [60., 40.]])
    prompts = [[click(30, 40), box(10, 10, 60, 90)],
               [dict(type='scribble', points=stroke, instance_id=0)], []]
    out = enc(view(3), prompts)
    assert [tuple(o.shape) for o in out] == [(2, LM_DIM), (1, LM_DIM),
                                             (0, LM_DIM)]
    assert all(torch.isfinite(o).all() for o in out)


def test_click_and_box_at_different_places_differ():
    enc = build().eval()
    img = view()
    a = enc(img, [[click(30, 40)]])[0]
    b = enc(img, [[box(70, 60, 120, 110)]])[0]
    c = enc(img, [[click(100, 90)]])[0]
    assert not torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-4)


def test_prompt_type_embedding_is_used():
    # the same reference box as a click (type 0) or a box (type 1)
    enc = build(test_click_size=8 / G).eval()
    img = view()
    as_click = enc(img, [[click(64, 64)]])[0]
    as_box = enc(img, [[box(60, 60, 68, 68)]])[0]
    assert not torch.allclose(as_click, as_box, atol=1e-4)
    with torch.no_grad():
        enc.pb_embedding.weight[1] = enc.pb_embedding.weight[0]
    assert torch.allclose(enc(img, [[box(60, 60, 68, 68)]])[0], as_click,
                          atol=1e-5)


# ------------------------------------------------- self-attention mask
def test_block_diagonal_mask_in_training():
    enc = build().train()
    img = view()

    def run(other):
        torch.manual_seed(7)  # same box jitter draws in both runs
        return enc(img, [[click(30, 40), other]])[0]

    first = run(box(70, 60, 120, 110))
    second = run(box(5, 80, 40, 125))
    assert torch.equal(first[0], second[0])
    assert not torch.allclose(first[1], second[1], atol=1e-4)


def test_no_mask_at_inference():
    enc = build().eval()
    img = view()
    first = enc(img, [[click(30, 40), box(70, 60, 120, 110)]])[0]
    second = enc(img, [[click(30, 40), box(5, 80, 40, 125)]])[0]
    # prompts see each other at inference (official: no mask)
    assert not torch.allclose(first[0], second[0], atol=1e-6)


def test_padding_prompts_are_invisible():
    enc = build().eval()
    img = view(2)
    alone = enc(img[:1], [[click(30, 40)]])[0]
    batched = enc(img, [[click(30, 40)],
                        [box(1, 1, 50, 50), click(90, 90), click(5, 5)]])
    assert torch.allclose(batched[0], alone, atol=1e-5)


def test_self_attn_mask_layout():
    enc = build()
    valid = torch.tensor([[True, True], [True, False]])
    mask = enc.self_attn_mask(valid, block_diagonal=True)
    heads = enc.decoder.layers[0].self_attn.num_heads
    assert mask.shape == (2 * heads, 6, 6)
    allowed = ~mask[0]
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[:3, :3] = True
    expected[3:, 3:] = True
    assert torch.equal(allowed, expected)
    allowed_b = ~mask[heads]  # sample 1: unit 1 is padding
    assert allowed_b[:3, :3].all() and not allowed_b[:3, 3:].any()
    assert torch.equal(allowed_b[3:, 3:], torch.eye(3, dtype=torch.bool))


# ---------------------------------------------------- prompt geometry
def test_click_box_sizes():
    enc = build()
    units = enc.train().prompt_boxes([[click(32, 64)]], (G, G), 'cpu')
    assert torch.allclose(units[0][0][0],
                          torch.tensor([0.25, 0.5, 6 / G, 6 / G]))
    units = enc.eval().prompt_boxes([[click(32, 64)]], (G, G), 'cpu')
    assert torch.allclose(units[0][0][0], torch.tensor([0.25, 0.5, .006,
                                                        .006]))
    assert units[0][1].tolist() == [0]


def test_scribble_modes():
    stroke = torch.zeros(G, G)
    stroke[30:35, 20:40] = 1  # x 20..39, y 30..34 -> box [20, 30, 40, 35]
    points = torch.tensor([[22.5, 31.5], [38.5, 33.5]])
    scribble = dict(type='scribble', points=points, mask=stroke,
                    instance_id=0)
    img = view()
    enc = build(scribble_mode='box').eval()
    assert torch.allclose(enc(img, [[scribble]])[0],
                          enc(img, [[box(20, 30, 40, 35)]])[0], atol=1e-6)
    enc = build(scribble_mode='click').eval()
    assert torch.allclose(enc(img, [[scribble]])[0],
                          enc(img, [[click(30.0, 32.5)]])[0], atol=1e-6)
    enc = build(scribble_mode='points').eval()
    clicks = enc(img, [[click(22.5, 31.5), click(38.5, 33.5)]])[0]
    assert torch.allclose(enc(img, [[scribble]])[0], clicks.mean(0),
                          atol=1e-5)
    with pytest.raises(ValueError, match='scribble_mode'):
        build(scribble_mode='line')


def test_default_scribble_mode_is_box():
    assert build().scribble_mode == 'box'


def test_box_noise_in_training_only():
    enc = build().train()
    boxes = torch.tensor([[0.5, 0.5, 0.4, 0.2], [0.5, 0.5, 0.4, 0.2]])
    types = torch.tensor([1, 0])
    torch.manual_seed(0)
    noisy = enc.jitter(boxes, types)
    # corners move at most 0.4 x half side (box), 0.004 x half side (click)
    move = (noisy - boxes).abs()
    assert move[0].max() > 1e-3
    assert (move[0, :2] <= 0.4 * boxes[0, 2:] / 2 + 1e-6).all()
    assert move[1].max() <= 0.004 * 0.2 + 1e-6
    enc.eval()
    img = view()
    assert torch.equal(enc(img, [[box(10, 10, 60, 60)]])[0],
                       enc(img, [[box(10, 10, 60, 60)]])[0])


# ----------------------------------------------------------- bad input
def test_unknown_prompt_type_names_the_sample():
    enc = build().eval()
    sample = make_sample((G, G), [(0, 0, 10, 10)], img_id='img-7')
    with pytest.raises(GroundingDataError) as err:
        enc(view(), [[dict(type='polygon', points=[[1, 2]])]], [sample])
    msg = str(err.value)
    assert "img-7" in msg and 'visual_prompts_grounding[0].type' in msg
    assert 'polygon' in msg
    with pytest.raises(GroundingDataError, match='batch sample 1'):
        enc(view(2), [[click(3, 3)], [dict(type='lasso')]])


def test_mark_prompt_raises():
    enc = build().eval()
    with pytest.raises(GroundingDataError, match='Set-of-Mark'):
        enc(view(), [[dict(type='mark', mask=torch.ones(G, G))]])


@pytest.mark.parametrize('prompt', [
    click(G + 20, 40),
    box(G + 1, 10, G + 30, 40),
    box(-50, -50, -10, -10),
    dict(type='scribble', points=torch.tensor([[-9., -9.], [-5., -3.]])),
])
def test_prompt_outside_the_view_raises(prompt):
    enc = build().eval()
    sample = make_sample((G, G), [(0, 0, 10, 10)], img_id=3)
    with pytest.raises(GroundingDataError, match='outside the 128x128'):
        enc(view(), [[prompt]], [sample])


def test_malformed_prompts_raise():
    enc = build().eval()
    for bad in (dict(type='box'), dict(type='box', box=[10, 10, 5, 20]),
                dict(type='click', points=[[1, 2], [3, 4]]),
                dict(type='click'), 'click'):
        with pytest.raises(GroundingDataError):
            enc(view(), [[bad]])


# -------------------------------------------------------------- losses
def test_losses_equal_hand_computed_values():
    enc = build(num_points=4)
    # fixed points: the 4 pixel centres of a 2 x 2 map
    centres = torch.tensor([[.25, .25], [.75, .25], [.25, .75], [.75, .75]])
    enc.sample_loss_points = lambda logits: centres[None].expand(
        len(logits), -1, -1)
    logits = [[2., -1.], [0., 1.]]
    gt = [[1., 0.], [0., 1.]]
    pred_iou = 0.3
    pred_box = [0.5, 0.5, 0.4, 0.4]
    gt_box = [0.4, 0.4, 0.4, 0.4]
    out = dict(
        masks=torch.tensor(logits)[None, None, None].repeat(2, 1, 1, 1, 1),
        ious=torch.full((2, 1, 1), pred_iou),
        boxes=torch.tensor(pred_box)[None, None, None].repeat(2, 1, 1, 1),
        obj_features=torch.zeros(1, 1, 32),
        valid=torch.ones(1, 1, dtype=torch.bool))
    targets = dict(masks=torch.tensor(gt)[None], boxes=torch.tensor([gt_box]),
                   mask_valid=torch.tensor([True]))
    losses = enc.loss_by_feat(out, targets)
    assert set(losses) == {
        f'vp.{p}loss_{k}'
        for p in ('', 'd0.')
        for k in ('mask', 'dice', 'iou_score', 'bbox', 'giou')
    }
    # hand computation (plain Python)
    flat_l = [2., -1., 0., 1.]
    flat_t = [1., 0., 0., 1.]
    sig = [1 / (1 + math.exp(-v)) for v in flat_l]
    bce = sum(-(t * math.log(p) + (1 - t) * math.log(1 - p))
              for p, t in zip(sig, flat_t)) / 4
    inter = sum(p * t for p, t in zip(sig, flat_t))
    coef = (2 * inter + 1) / (sum(sig) + sum(flat_t) + 1)
    dice = 1 - coef
    mse = (pred_iou - coef)**2
    l1 = 0.1 + 0.1
    # pred xyxy (.3,.3,.7,.7), gt (.2,.2,.6,.6)
    i_area, u_area, e_area = 0.09, 0.16 + 0.16 - 0.09, 0.25
    giou = 1 - (i_area / u_area - (e_area - u_area) / e_area)
    expected = dict(mask=5 * bce, dice=5 * dice, iou_score=1 * mse,
                    bbox=5 * l1, giou=2 * giou)
    for prefix in ('vp.', 'vp.d0.'):
        for key, value in expected.items():
            got = losses[f'{prefix}loss_{key}'].item()
            assert got == pytest.approx(0.2 * value, rel=1e-5), (key, got)


def test_box_only_object_gets_no_mask_loss():
    enc = build(num_points=4)
    out = dict(
        masks=torch.randn(1, 1, 1, 2, 2), ious=torch.zeros(1, 1, 1),
        boxes=torch.full((1, 1, 1, 4), 0.5), obj_features=torch.zeros(1, 1,
                                                                      32),
        valid=torch.ones(1, 1, dtype=torch.bool))
    targets = dict(masks=torch.ones(1, 2, 2),
                   boxes=torch.tensor([[0.4, 0.4, 0.2, 0.2]]),
                   mask_valid=torch.tensor([False]))
    losses = enc.loss_by_feat(out, targets)
    assert losses['vp.loss_mask'].item() == 0
    assert losses['vp.loss_dice'].item() == 0
    assert losses['vp.loss_bbox'].item() > 0


def test_targets_follow_the_view_geometry():
    enc = build()
    # a 64 x 128 image -> 64 x 128 inside the 128 x 128 view
    sample = make_sample((64, 128), [(0, 0, 4, 4), (32, 16, 96, 48)],
                         img_id=1)
    prompts = [[box(32, 16, 96, 48, inst=1)]]
    units = enc.eval().prompt_boxes(prompts, (G, G), 'cpu')
    targets = enc.targets(prompts, units, [sample], (G, G))
    assert torch.allclose(targets['boxes'],
                          torch.tensor([[0.5, 0.25, 0.5, 0.25]]))
    masks = targets['masks']
    assert masks.shape == (1, G, G)
    assert masks[0, 16:48, 32:96].all() and masks.sum() == 32 * 64


def test_loss_needs_the_prompted_object():
    enc = build().train()
    sample = make_sample((G, G), [(0, 0, 10, 10)], img_id='x1')
    for inst in (None, 3):
        with pytest.raises(GroundingDataError, match='instance_id'):
            enc.loss(view(), [[click(5, 5, inst=inst)]], [sample])


def test_loss_keys_and_gradients_reach_every_part():
    enc = build().train()
    sample = make_sample((G, G), [(10, 10, 50, 60), (70, 70, 120, 110)],
                         img_id=0)
    embeds, losses = enc.loss_and_embed(
        view(), [[click(30, 30, 0), box(70, 70, 120, 110, 1)]], [sample])
    assert embeds[0].shape == (2, LM_DIM)
    assert len(losses) == 5 * enc.decoder.num_layers
    total = sum(losses.values()) + embeds[0].sum()
    total.backward()
    for name in ('backbone.patch_embed.projection.weight',
                 'pixel_decoder.mask_feature.weight', 'label_enc.weight',
                 'pb_embedding.weight', 'mask_tokens.weight',
                 'iou_prediction_head.layers.0.weight',
                 # (last box layer: the others get 0 while it is 0-init)
                 'reg_branch.layers.2.weight', 'obj_projector.weight'):
        grad = dict(enc.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_scribble_points_mode_supervises_every_point():
    enc = build(scribble_mode='points').train()
    sample = make_sample((G, G), [(10, 10, 50, 60), (70, 70, 120, 110)],
                         img_id=0)
    stroke = dict(type='scribble', instance_id=1,
                  points=torch.tensor([[80., 80.], [90., 95.], [110., 100.]]))
    prompts = [[click(20, 20, 0), stroke]]
    units = enc.prompt_boxes(prompts, (G, G), 'cpu')
    assert units[0][2].tolist() == [0, 1, 1, 1]
    targets = enc.targets(prompts, units, [sample], (G, G))
    # every point of the stroke is supervised by the stroke's object
    assert torch.allclose(targets['boxes'][1:],
                          torch.tensor([[95., 90., 50., 40.]]) / G)
    embeds, losses = enc.loss_and_embed(view(), prompts, [sample])
    assert embeds[0].shape == (2, LM_DIM)
    assert all(torch.isfinite(v) for v in losses.values())


def test_predict_gives_final_layer_outputs_per_prompt():
    enc = build().eval()
    res = enc.predict(view(), [[click(30, 40), box(10, 10, 60, 90)]])
    assert res[0]['masks'].shape == (2, G // 4, G // 4)
    assert res[0]['ious'].shape == (2, ) and res[0]['boxes'].shape == (2, 4)
    assert res[0]['owner'].tolist() == [0, 1]


def test_empty_batch_gives_connected_zero_losses():
    enc = build().train()
    sample = make_sample((G, G), [(0, 0, 10, 10)], img_id=0)
    losses = enc.loss(view(), [[]], [sample])
    total = sum(losses.values())
    assert total.item() == 0
    total.backward()
    assert enc.obj_projector.weight.grad is not None


def test_tiny_encoder_overfits_a_batch():
    enc = build()
    enc.train()
    samples = [
        make_sample((G, G), [(10, 10, 50, 60), (70, 70, 120, 110)], 0),
        make_sample((96, G), [(20, 8, 100, 40)], 1)
    ]
    prompts = [[click(30, 35, 0), box(70, 70, 120, 110, 1)],
               [box(20, 8, 100, 40, 0)]]
    img = view(2, seed=3)
    optim = torch.optim.AdamW(enc.parameters(), lr=2e-3)
    totals = []
    for _ in range(25):  # measured: 3.8 -> 1.3
        losses = enc.loss(img, prompts, samples)
        total = sum(losses.values())
        optim.zero_grad()
        total.backward()
        optim.step()
        totals.append(total.item())
    first, last = np.mean(totals[:3]), np.mean(totals[-3:])
    assert last < first / 2, (first, last)


def test_runs_fp32_under_bf16_autocast():
    enc = build().train()
    sample = make_sample((G, G), [(10, 10, 50, 60)], img_id=0)
    prompts = [[click(30, 30, 0)]]
    torch.manual_seed(1)
    ref_embeds, ref = enc.loss_and_embed(view(), prompts, [sample])
    torch.manual_seed(1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        embeds, got = enc.loss_and_embed(view(), prompts, [sample])
    assert embeds[0].dtype == torch.float32
    assert torch.allclose(embeds[0], ref_embeds[0], atol=1e-5)
    for key, value in ref.items():
        assert got[key].dtype == torch.float32
        assert got[key].item() == pytest.approx(value.item(), rel=1e-4)


def test_frozen_encoder():
    enc = build(trainable=False)
    assert not any(p.requires_grad for p in enc.parameters())


# -------------------------------------------------------------- full size
def test_full_size_parameter_count():
    # Design note §7: prompt encoder 54.03 M = Swin-T 27.52 + pixel decoder
    # 10.49 + interactive decoder 14.97 + obj_projector 1.05. The decoder
    # figure includes three dead official tensors that are not built here
    # (class_embed and class_embed_part [256, 512], lang_mapper [512, 256]).
    enc = SemanticSAMPromptEncoder(lm_dim=4096)

    def count(module):
        return sum(p.numel() for p in module.parameters()) / 1e6

    dead = 3 * 256 * 512 / 1e6
    backbone, pixel_decoder = count(enc.backbone), count(enc.pixel_decoder)
    projector = count(enc.obj_projector)
    decoder_side = count(enc) - backbone - pixel_decoder - projector
    assert backbone == pytest.approx(27.52, abs=0.01)
    assert pixel_decoder == pytest.approx(10.49, abs=0.01)
    assert projector == pytest.approx(1.05, abs=0.01)
    assert decoder_side + dead == pytest.approx(14.97, abs=0.01)
    assert count(enc) + dead == pytest.approx(54.03, abs=0.01)
    assert enc.decoder.num_layers == 9 and enc.num_mask_tokens == 3
    assert enc.mask_tokens.weight.shape == (3, 256)
    assert enc.label_enc.weight.shape == (2, 256)
    assert enc.pb_embedding.weight.shape == (2, 256)
