"""The tiny OpenSeeD head learns to ground by the <seg> state (slow).

Images hold a red and a green rectangle; the single <seg> state is a fixed
random vector per colour (norm ~11, like a tiny LLM's hidden state) and the
target is the rectangle of that colour. Measured in a run of this setup (2
loaded CPU cores, one thread, ~3-4 min): Acc@0.5 of the top-1 box 0.00 at
init, 0.50 after 50 steps of batch 16, 0.83 after 250; the other rectangle
is never chosen.
"""
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

from mmgrounding.models.grounding_heads import tiny_openseed_head_cfg
from mmgrounding.registry import MODELS

G = 128
COLOURS = torch.tensor([[2., -1., -1.], [-1., 2., -1.]])


def _batch(n, rng, states):
    pixels = torch.randn(n, 3, G, G, generator=torch.Generator().manual_seed(
        int(rng.integers(1 << 30)))) * 0.3
    samples, prompts = [], []
    for i in range(n):
        boxes, masks = [], np.zeros((2, G, G), np.uint8)
        for k in range(2):
            while True:
                w, h = rng.integers(16, 48, 2)
                x, y = rng.integers(0, G - 48, 2)
                if all(x + w <= b[0] or b[2] <= x or y + h <= b[1]
                       or b[3] <= y for b in boxes):
                    break
            boxes.append([x, y, x + w, y + h])
            masks[k, y:y + h, x:x + w] = 1
            pixels[i, :, y:y + h, x:x + w] += COLOURS[k][:, None, None]
        target = int(rng.integers(0, 2))
        sample = DetDataSample(metainfo=dict(img_id=i, ori_shape=(G, G)))
        sample.gt_objects = InstanceData(
            masks=BitmapMasks(masks, G, G),
            bboxes=torch.tensor(boxes, dtype=torch.float32),
            labels=torch.zeros(2, dtype=torch.long))
        sample.grounding_instance_ids = [[target]]
        samples.append(sample)
        prompts.append(states[target])
    inputs = dict(
        pixels=pixels,
        sizes=torch.full((n, 2), G),
        prompt_mask=torch.ones(n, 1, dtype=torch.bool))
    return torch.stack(prompts)[:, None], inputs, samples


def _iou(a, b):
    lt = torch.max(a[:, :2], b[:, :2])
    rb = torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = (a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area - inter)


@pytest.mark.slow
def test_tiny_head_learns_to_ground_by_prompt():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        states = torch.randn(2, 128)
        head = MODELS.build(tiny_openseed_head_cfg(128, swin_dims=16))
        head.init_weights()
        optim = torch.optim.AdamW(head.parameters(), lr=1e-3,
                                  weight_decay=0.05)
        rng = np.random.default_rng(0)
        val = _batch(64, np.random.default_rng(99), states)

        def evaluate():
            head.eval()
            results = head.predict(*val)
            head.train()
            pred = torch.cat([r.bboxes for r in results])
            right = torch.stack([
                s.gt_objects.bboxes[s.grounding_instance_ids[0][0]]
                for s in val[2]
            ])
            wrong = torch.stack([
                s.gt_objects.bboxes[1 - s.grounding_instance_ids[0][0]]
                for s in val[2]
            ])
            return ((_iou(pred, right) > 0.5).float().mean().item(),
                    (_iou(pred, wrong) > 0.5).float().mean().item())

        acc0, _ = evaluate()
        for _ in range(250):
            losses = head.loss(*_batch(16, rng, states))
            optim.zero_grad()
            sum(losses.values()).backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            optim.step()
        acc, wrong = evaluate()
    finally:
        torch.set_num_threads(threads)
    assert acc0 < 0.1
    assert acc >= 0.6, acc
    assert wrong <= 0.1, wrong
