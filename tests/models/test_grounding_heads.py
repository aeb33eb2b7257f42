"""SAMGroundingHead: the grounding-head contract, mask logits at original
size, freezing."""
import os

import pytest
import torch
from torch.nn import functional as F
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from transformers import SamConfig, SamModel

from mmgrounding.models.grounding_heads import SAMGroundingHead
from mmgrounding.registry import MODELS

os.environ.setdefault('HF_HUB_OFFLINE', '1')
torch.set_num_threads(1)

TINY_SAM = dict(
    vision_config=dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=64,
        patch_size=16,
        output_channels=32,
        num_pos_feats=16,
        global_attn_indexes=[0, 1]),
    prompt_encoder_config=dict(
        hidden_size=32, image_size=64, patch_size=16, mask_input_channels=4),
    mask_decoder_config=dict(
        hidden_size=32, mlp_dim=64, num_attention_heads=2,
        iou_head_hidden_dim=32))


def _head(**kwargs):
    torch.manual_seed(0)
    cfg = dict(
        type='SAMGroundingHead',
        sam=dict(config=TINY_SAM),
        prompt_channels=32,
        image_size=64)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _logits(head, emb, prompts, input_size, ori_size):
    """Logits of the prompts of ONE image: [C, h, w] embedding."""
    return head.mask_logits(emb[None], [prompts],
                            torch.tensor([list(input_size)]), [ori_size])[0]


def _samples(ori_sizes, masks=None):
    samples = []
    for i, (h, w) in enumerate(ori_sizes):
        s = DetDataSample(metainfo=dict(ori_shape=(h, w), img_id=i))
        if masks is not None:
            s.gt_instances = InstanceData(masks=masks[i])
        samples.append(s)
    return samples


def _padded(prompts):
    """list of [N_i, D] -> ([B, N, D] zero-padded, [B, N] mask)."""
    num = max(len(p) for p in prompts)
    embeds = torch.zeros(len(prompts), num, prompts[0].shape[-1])
    mask = torch.zeros(len(prompts), num, dtype=torch.bool)
    for i, p in enumerate(prompts):
        embeds[i, :len(p)] = p
        mask[i, :len(p)] = True
    return embeds, mask


def _n(params):
    return sum(p.numel() for p in params)


def test_tiny_init_is_usable():
    head = _head()
    vis = head.sam.config.vision_config
    assert vis.initializer_range == 0.02
    emb = head.extract_feat(torch.randn(2, 3, 64, 64))
    assert emb.shape == (2, 32, 4, 4)
    assert emb.std() > 0.1  # not ~1e-20 as with transformers' 1e-10 init
    pos = head.sam.shared_image_embedding.positional_embedding
    assert 0.5 < pos.std() < 1.5  # original SAM: std 1
    assert pos is head.sam.prompt_encoder.shared_embedding.positional_embedding


def test_frozen_parts_and_trainable_count():
    head = _head()
    trainable = _n(p for p in head.parameters() if p.requires_grad)
    assert trainable == _n(head.sam.mask_decoder.parameters())
    head.train()
    assert not head.sam.vision_encoder.training
    assert not head.sam.prompt_encoder.training
    assert head.sam.mask_decoder.training
    emb = head.extract_feat(torch.randn(1, 3, 64, 64))
    assert not emb.requires_grad

    open_head = _head(trainable='all')
    with pytest.raises(ValueError, match='unknown trainable parts'):
        _head(trainable=('image_encoder', ))
    trainable = _n(p for p in open_head.parameters() if p.requires_grad)
    fourier = head.sam.shared_image_embedding.positional_embedding.numel()
    assert trainable == _n(open_head.parameters()) - fourier
    assert open_head.extract_feat(torch.randn(1, 3, 64, 64)).requires_grad


def test_mask_logits_at_original_size_non_square():
    head = _head().eval()
    emb = head.extract_feat(torch.randn(1, 3, 64, 64))[0]
    prompts = torch.randn(3, 32, requires_grad=True)
    # a 50x31 image: its longest side is resized to 64 -> 64x40 in the pad
    logits = _logits(head, emb, prompts, (64, 40), (50, 31))
    assert logits.shape == (3, 50, 31) and logits.dtype == torch.float32
    logits.sum().backward()
    assert prompts.grad.abs().sum() > 0

    # one decoder call for all prompts == one call per prompt
    single = _logits(head, emb, prompts[1:2], (64, 40), (50, 31))
    torch.testing.assert_close(single[0], logits[1], rtol=1e-4, atol=1e-6)

    # SAM postprocess: upsample 16->64, crop 64x40, resize to 50x31
    low, _ = head.sam.mask_decoder(
        image_embeddings=emb[None],
        image_positional_embeddings=head.sam.
        get_image_wide_positional_embeddings(),
        sparse_prompt_embeddings=prompts[None, :, None],
        dense_prompt_embeddings=head.sam.prompt_encoder.no_mask_embed.weight
        .reshape(1, 32, 1, 1).expand(1, 32, 4, 4),
        multimask_output=False)
    assert low.shape == (1, 3, 1, 16, 16)
    ref = F.interpolate(low[0], (64, 64), mode='bilinear')[..., :64, :40]
    ref = F.interpolate(ref, (50, 31), mode='bilinear')[:, 0]
    torch.testing.assert_close(logits, ref)


def test_postprocess_masks_equals_the_two_resizes_exactly():
    """Batched postprocess (one resize to the view, identity resizes
    skipped) == SAM's two bilinear resizes per image, bit for bit, values
    and gradients."""
    head = _head()
    low = torch.randn(5, 16, 16, requires_grad=True)
    counts = [2, 0, 3]
    sizes = torch.tensor([[64, 40], [64, 64], [64, 64]])
    out_sizes = [(50, 31), (10, 10), (64, 64)]  # last: identity 2nd resize
    got = head.postprocess_masks(low, counts, sizes, out_sizes)
    assert [tuple(g.shape) for g in got] == [(2, 50, 31), (0, 10, 10),
                                             (3, 64, 64)]
    refs = []
    for rows, (h, w), size in zip(low.split(counts), sizes.tolist(),
                                  out_sizes):
        if not len(rows):
            continue
        ref = F.interpolate(rows[:, None], (64, 64), mode='bilinear',
                            align_corners=False)[..., :h, :w]
        refs.append(F.interpolate(ref, size, mode='bilinear',
                                  align_corners=False)[:, 0])
    assert torch.equal(got[0], refs[0]) and torch.equal(got[2], refs[1])
    weights = [torch.randn_like(r) for r in refs]
    grad = torch.autograd.grad(
        sum((g * w).sum() for g, w in zip((got[0], got[2]), weights)),
        low)[0]
    grad_ref = torch.autograd.grad(
        sum((r * w).sum() for r, w in zip(refs, weights)), low)[0]
    assert torch.equal(grad, grad_ref)


def test_predict_batch_and_empty_prompts():
    head = _head().eval()
    pixels = torch.randn(2, 3, 64, 64)
    embeds, mask = _padded([torch.randn(2, 32), torch.zeros(0, 32)])
    inputs = dict(pixels=pixels, sizes=torch.tensor([[48, 64], [64, 20]]),
                  prompt_mask=mask)
    with torch.no_grad():
        out = head.predict(embeds, inputs, _samples([(30, 40), (80, 25)]))
    assert [o.masks.shape for o in out] == [(2, 30, 40), (0, 80, 25)]
    assert out[0].masks.dtype == torch.bool
    assert out[0].labels.tolist() == [0, 1]  # index of the grounding token
    assert out[0].bboxes.shape == (2, 4) and out[1].bboxes.shape == (0, 4)
    assert ((out[0].scores >= 0) & (out[0].scores <= 1)).all()
    # given feats are used instead of recomputing the image side
    with torch.no_grad():
        feats = head.extract_feat(pixels)
        again = head.predict(embeds, dict(inputs, feats=feats),
                             _samples([(30, 40), (80, 25)]))
    assert torch.equal(again[0].masks, out[0].masks)
    # rescale=False: masks in the G x G view
    with torch.no_grad():
        view = head.predict(embeds, inputs, _samples([(30, 40), (80, 25)]),
                            rescale=False)
    assert view[0].masks.shape == (2, 64, 64)


def test_batched_logits_equal_per_image_calls():
    head = _head().eval()
    embs = head.extract_feat(torch.randn(3, 3, 64, 64))
    prompts = [torch.randn(2, 32), torch.randn(0, 32), torch.randn(3, 32)]
    sizes = torch.tensor([[48, 64], [64, 20], [64, 64]])
    ori = [(30, 40), (80, 25), (64, 64)]
    with torch.no_grad():
        batched = head.mask_logits(embs, prompts, sizes, ori)
        for i in range(3):
            single = _logits(head, embs[i], prompts[i],
                             tuple(sizes[i].tolist()), ori[i])
            torch.testing.assert_close(batched[i], single, atol=1e-5,
                                       rtol=1e-5)


def test_loss_and_empty_batch():
    head = _head()
    gt = (torch.rand(2, 64, 64) > 0.5).float()
    embeds, mask = _padded([torch.randn(2, 32)])
    inputs = dict(pixels=torch.randn(1, 3, 64, 64),
                  sizes=torch.tensor([[64, 64]]), prompt_mask=mask)
    samples = _samples([(64, 64)], [gt])
    losses = head.loss(embeds, inputs, samples)
    assert set(losses) == {'loss_mask', 'loss_dice'}
    assert losses['loss_mask'] > 0 and losses['loss_dice'] > 0
    # BCE by hand, from the head's own logits: weight 2, mean over pixels
    logits = _logits(head, head.extract_feat(inputs['pixels'])[0],
                     embeds[0], (64, 64), (64, 64))
    bce = F.binary_cross_entropy_with_logits(logits, gt)
    torch.testing.assert_close(losses['loss_mask'], 2 * bce)
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in head.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values())  # DDP-safe
    assert grads['sam.mask_decoder.mask_tokens.weight'].abs().sum() > 0
    iou_head = 'sam.mask_decoder.iou_prediction_head.proj_out.weight'
    assert grads[iou_head].abs().sum() == 0  # unused, tied by a zero

    head.zero_grad()
    empty = head.loss(
        torch.zeros(1, 0, 32),
        dict(inputs, prompt_mask=torch.zeros(1, 0, dtype=torch.bool)),
        _samples([(10, 12)], [torch.zeros(0, 10, 12)]))
    assert empty['loss_mask'].detach() == 0
    assert empty['loss_dice'].detach() == 0
    sum(empty.values()).backward()
    for name, param in head.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() == 0, \
                name

    with pytest.raises(ValueError, match=r'sample 0 \(img_id=0.*2 grounding '
                       'tokens but 1 gt masks'):
        head.loss(embeds, inputs, _samples([(64, 64)], [gt[:1]]))
    with pytest.raises(ValueError, match='prompt_embeds must be'):
        head.loss(embeds[0], inputs, samples)


def test_size_mismatches_raise():
    with pytest.raises(ValueError, match='prompt_channels'):
        _head(prompt_channels=16)
    with pytest.raises(ValueError, match='image_size'):
        _head(image_size=1024)
    bad = dict(TINY_SAM, mask_decoder_config=dict(
        hidden_size=16, mlp_dim=32, num_attention_heads=2,
        iou_head_hidden_dim=16))
    with pytest.raises(ValueError, match='channel sizes disagree'):
        _head(sam=dict(config=bad))
    head = _head()
    with pytest.raises(ValueError, match='grounding pixels'):
        head.extract_feat(torch.randn(1, 3, 32, 32))


def test_from_pretrained_round_trip(tmp_path):
    head = _head().eval()
    head.sam.save_pretrained(tmp_path / 'sam')
    loaded = MODELS.build(
        dict(
            type='SAMGroundingHead',
            sam=dict(pretrained_model_name_or_path=str(tmp_path / 'sam')),
            prompt_channels=32,
            image_size=64)).eval()
    loaded.init_weights()  # the Runner calls it: must keep loaded weights
    pixels = torch.randn(1, 3, 64, 64)
    prompts = torch.randn(2, 32)
    a = _logits(head, head.extract_feat(pixels)[0], prompts, (64, 50),
                (40, 51))
    b = _logits(loaded, loaded.extract_feat(pixels)[0], prompts, (64, 50),
                (40, 51))
    torch.testing.assert_close(a, b)


def test_sam_vit_h_on_meta_device():
    """GLaMM's SAM ViT-H: 641.1M parameters."""
    vit_h = dict(
        vision_config=dict(
            hidden_size=1280,
            num_hidden_layers=32,
            num_attention_heads=16,
            global_attn_indexes=[7, 15, 23, 31]))
    with torch.device('meta'):
        head = SAMGroundingHead(sam=dict(config=vit_h))
    assert isinstance(head.sam, SamModel)
    assert isinstance(head.sam.config, SamConfig)
    n_params = _n(head.parameters())
    assert n_params == pytest.approx(641.1e6, rel=0.01)
    decoder = _n(head.sam.mask_decoder.parameters())
    assert _n(p for p in head.parameters() if p.requires_grad) == decoder
