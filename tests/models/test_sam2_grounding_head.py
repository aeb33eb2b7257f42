"""SAM2GroundingHead: the grounding-head contract on a tiny random SAM2.

The head shares targets, losses and prediction with SAMGroundingHead; these
tests check what is its own (the SAM2 image side and decoder call, size
checks, freezing) and the contract end to end (loss falls, masks + boxes
out at the original size).
"""
import os
from pathlib import Path

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmgrounding.models.grounding_heads import (SAM2GroundingHead,
                                                SAMGroundingHead)
from mmgrounding.registry import MODELS
from mmgrounding.testing import build_tiny_tokenizer, tiny_glamm_cfg

os.environ.setdefault('HF_HUB_OFFLINE', '1')
torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
PART = ROOT / 'configs/_base_/models/tiny_parts/sam2_head.py'


def _cfg(**kwargs):
    cfg = Config.fromfile(str(PART)).tiny_sam2_head.to_dict()
    cfg.update(kwargs)
    return cfg


def _head(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(_cfg(**kwargs))


def _inputs(num, n_prompts, size=128):
    torch.manual_seed(1)
    pixels = torch.randn(num, 3, size, size)
    embeds = torch.randn(num, n_prompts, 64)
    mask = torch.ones(num, n_prompts, dtype=torch.bool)
    return embeds, dict(pixels=pixels,
                        sizes=torch.tensor([[size, size]] * num),
                        prompt_mask=mask)


def _samples(ori_sizes, masks=None):
    out = []
    for i, (h, w) in enumerate(ori_sizes):
        s = DetDataSample(metainfo=dict(ori_shape=(h, w), img_id=i))
        if masks is not None:
            s.gt_instances = InstanceData(masks=masks[i])
        out.append(s)
    return out


def test_is_a_sam_family_head_of_the_contract():
    head = _head()
    assert isinstance(head, SAMGroundingHead)
    assert head.target_kind == 'union' and head.prompt_dim == 64
    # the single-mask output is what a grounding token trains
    assert not head.sam.mask_decoder.dynamic_multimask_via_stability
    s0, s1, emb = head.extract_feat(torch.zeros(2, 3, 128, 128))
    # decoder-side projections of strides 4 and 8 (C/8, C/4), embedding 16
    assert s0.shape == (2, 8, 32, 32) and s1.shape == (2, 16, 16, 16)
    assert emb.shape == (2, 64, 8, 8)


def test_sizes_that_disagree_raise():
    with pytest.raises(ValueError, match='channel sizes disagree'):
        _head(prompt_channels=32)
    with pytest.raises(ValueError, match='image sizes disagree'):
        _head(image_size=256)
    with pytest.raises(ValueError, match='exactly one of'):
        MODELS.build(dict(type='SAM2GroundingHead', sam2=dict()))
    head = _head()
    with pytest.raises(ValueError, match=r'\[B, 3, 128, 128\]'):
        head.extract_feat(torch.zeros(1, 3, 64, 64))


def test_frozen_image_encoder_keeps_decoder_projections_trainable():
    head = _head(trainable=('mask_decoder', ))
    vision = head.sam.vision_encoder
    assert not any(p.requires_grad for p in vision.parameters())
    assert not head.sam.no_memory_embedding.requires_grad
    assert not vision.training  # frozen parts stay in eval mode
    embeds, ginputs = _inputs(1, 1)
    mask = torch.zeros(1, 1, 40, 60, dtype=torch.bool)
    mask[..., 10:30, 5:25] = True
    losses = head.loss(embeds, ginputs, _samples([(40, 60)], [mask[0]]))
    sum(losses.values()).backward()
    # conv_s0 / conv_s1 run on the (frozen) encoder's output but belong to
    # the decoder: they must get a gradient
    for conv in (head.sam.mask_decoder.conv_s0, head.sam.mask_decoder.conv_s1):
        assert conv.weight.grad is not None
        assert conv.weight.grad.abs().sum() > 0


def test_loss_falls_and_predict_gives_masks_and_their_boxes():
    head = _head()
    head.train()
    embeds, ginputs = _inputs(2, 1)
    embeds.requires_grad_(True)
    # a left rectangle in sample 0 (48 x 64), a bottom band in sample 1
    m0 = torch.zeros(1, 48, 64, dtype=torch.bool)
    m0[:, 8:40, 4:30] = True
    m1 = torch.zeros(1, 80, 40, dtype=torch.bool)
    m1[:, 50:78, :] = True
    samples = _samples([(48, 64), (80, 40)], [m0, m1])
    optim = torch.optim.AdamW(list(head.parameters()) + [embeds], lr=3e-3)
    history = []
    for _ in range(25):
        losses = head.loss(embeds, ginputs, samples)
        assert set(losses) == {'loss_mask', 'loss_dice'}
        total = sum(losses.values())
        optim.zero_grad()
        total.backward()
        optim.step()
        history.append(float(total))
    assert history[-1] < 0.6 * history[0], history
    head.eval()
    preds = head.predict(embeds.detach(), ginputs, samples)
    for pred, gt, (h, w) in zip(preds, (m0, m1), [(48, 64), (80, 40)]):
        assert pred.masks.shape == (1, h, w) and pred.masks.dtype == torch.bool
        assert pred.labels.tolist() == [0]
        ys, xs = torch.nonzero(pred.masks[0], as_tuple=True)
        assert len(xs), 'empty mask after training'
        # xyxy box of the predicted mask (exclusive right / bottom edge)
        assert pred.bboxes[0].tolist() == [
            xs.min().item(), ys.min().item(), xs.max().item() + 1,
            ys.max().item() + 1
        ]
        inter = (pred.masks[0] & gt[0]).sum().item()
        union = (pred.masks[0] | gt[0]).sum().item()
        assert inter / union > 0.5, inter / union


def test_no_prompt_batch_gives_tied_zeros_and_empty_predictions():
    head = _head()
    embeds = torch.zeros(2, 0, 64)
    ginputs = dict(pixels=torch.zeros(2, 3, 128, 128),
                   sizes=torch.tensor([[128, 128]] * 2),
                   prompt_mask=torch.zeros(2, 0, dtype=torch.bool))
    samples = _samples([(48, 64), (80, 40)],
                       [torch.zeros(0, 48, 64), torch.zeros(0, 80, 40)])
    losses = head.loss(embeds, ginputs, samples)
    assert float(losses['loss_mask']) == 0.0
    assert losses['loss_mask'].requires_grad  # DDP sees every parameter
    preds = head.predict(embeds, ginputs, samples)
    assert [tuple(p.masks.shape) for p in preds] == [(0, 48, 64), (0, 80, 40)]


def test_glamm_with_a_narrower_head_answers_without_grounding_tokens(
        tmp_path):
    """The base's prompt projection with no grounding token in the batch
    and a head narrower than the LM (128 -> 64) gives [B, 0, 64]."""
    build_tiny_tokenizer(str(tmp_path))
    cfg = tiny_glamm_cfg(str(tmp_path), grounding_head=_cfg())
    cfg['seg_projector']['out_channels'] = 64
    model = MODELS.build(cfg)
    states = [torch.zeros(0, 128), torch.zeros(0, 128)]
    embeds, mask = model.project_prompts(states)
    assert embeds.shape == (2, 0, 64) and mask.shape == (2, 0)
    embeds, mask = model.project_prompts([torch.zeros(0, 128),
                                          torch.randn(2, 128)])
    assert embeds.shape == (2, 2, 64)
    assert mask.tolist() == [[False, False], [True, True]]
