"""Fake GLaMM batches: what ``GroundingDataPreprocessor`` hands the model.

Builds ``inputs`` (pixels, padded ids, masks, labels) and ``DetDataSample``s
(gt masks, region boxes, metainfo) straight from text, so model tests do not
depend on the dataset pipeline.
"""
from typing import List, Optional, Sequence, Tuple

import torch


def _rect_mask(height: int, width: int, gen: torch.Generator) -> torch.Tensor:
    y0 = int(torch.randint(0, height // 2, (1, ), generator=gen))
    x0 = int(torch.randint(0, width // 2, (1, ), generator=gen))
    y1 = y0 + int(torch.randint(2, height // 2 + 1, (1, ), generator=gen))
    x1 = x0 + int(torch.randint(2, width // 2 + 1, (1, ), generator=gen))
    mask = torch.zeros(height, width, dtype=torch.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def make_glamm_batch(model,
                     prompts: Sequence[str],
                     answers: Optional[Sequence[str]] = None,
                     ori_sizes: Optional[Sequence[Tuple[int, int]]] = None,
                     region_boxes: Optional[Sequence[torch.Tensor]] = None,
                     tasks: Optional[Sequence[str]] = None,
                     num_image_tokens: Optional[int] = None,
                     seed: int = 0):
    """Inputs and data samples for ``model.loss`` / ``model.predict``.

    Each sequence is ``<s> The <im_start> <image>xN <im_end> {prompt}
    ASSISTANT:`` followed, when ``answers`` is given, by ``{answer} </s>``
    (labels on the answer only, right padding). Without answers the batch is
    LEFT padded for prediction. One random rectangle mask (original size) is
    attached per ``[SEG]`` of the answer.

    Args:
        model: a built ``GLaMM`` (tokenizer, vision and SAM sizes are read).
        prompts: user texts (may contain ``<bbox>``).
        answers: assistant texts (may contain ``[SEG]``), or None.
        ori_sizes: original (H, W) per sample (default (48, 64)).
        region_boxes: [R_i, 4] CLIP-view boxes per sample, one per
            ``<bbox>``.
        tasks: metainfo ``task`` per sample (default ``'gcg'``).
        num_image_tokens: ``<image>`` copies (default: the encoder's).

    Returns:
        ``(inputs, data_samples)``.
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    gen = torch.Generator().manual_seed(seed)
    tok = model.language_model.tokenizer
    batch = len(prompts)
    n_img = num_image_tokens if num_image_tokens is not None else \
        model.vision_encoder.num_patches
    ori_sizes = list(ori_sizes or [(48, 64)] * batch)
    tasks = list(tasks or ['gcg'] * batch)
    image_id = model.image_token_id
    seg_id = model.seg_token_id

    rows, label_rows, samples = [], [], []
    for i, prompt in enumerate(prompts):
        head = tok('The <im_start>').input_ids  # with bos
        tail = tok(
            f'<im_end> {prompt} ASSISTANT:',
            add_special_tokens=False).input_ids
        ids = head + [image_id] * n_img + tail
        labels = [-100] * len(ids)
        num_seg = 0
        if answers is not None:
            ans = tok(
                answers[i],
                add_special_tokens=False).input_ids + [tok.eos_token_id]
            ids = ids + ans
            labels = labels + ans
            num_seg = ans.count(seg_id)
        rows.append(torch.tensor(ids))
        label_rows.append(torch.tensor(labels))

        h, w = ori_sizes[i]
        sample = DetDataSample(
            metainfo=dict(
                img_id=i,
                img_path=f'fake/{i:06d}.png',
                ori_shape=(h, w),
                img_shape=(h, w),
                task=tasks[i],
                gt_phrases=[f'phrase {k}' for k in range(num_seg)]))
        masks = [_rect_mask(h, w, gen) for _ in range(num_seg)]
        inst = InstanceData()
        inst.masks = BitmapMasks(
            torch.stack(masks).numpy() if masks else torch.zeros(
                (0, h, w), dtype=torch.uint8).numpy(), h, w)
        inst.labels = torch.zeros(num_seg, dtype=torch.long)
        sample.gt_instances = inst
        boxes = region_boxes[i] if region_boxes is not None else \
            torch.zeros((0, 4))
        sample.region_bboxes_clip = torch.as_tensor(boxes, dtype=torch.float32)
        samples.append(sample)

    length = max(len(r) for r in rows)
    pad = tok.pad_token_id
    input_ids = torch.full((batch, length), pad)
    labels = torch.full((batch, length), -100)
    attention = torch.zeros((batch, length), dtype=torch.long)
    left = answers is None
    for i, (r, lab) in enumerate(zip(rows, label_rows)):
        sl = slice(length - len(r), length) if left else slice(0, len(r))
        input_ids[i, sl] = r
        labels[i, sl] = lab
        attention[i, sl] = 1

    clip_size = model.vision_encoder.image_size
    # the head's view: the preprocessor's, else the head's own input size
    g_size = getattr(model.data_preprocessor, 'grounding_size', None) or \
        model.grounding_head.image_size
    sizes = []
    for h, w in ori_sizes:
        scale = g_size / max(h, w)
        sizes.append([int(h * scale + 0.5), int(w * scale + 0.5)])
    inputs = dict(
        clip_pixels=torch.randn(batch, 3, clip_size, clip_size, generator=gen),
        grounding_pixels=torch.randn(batch, 3, g_size, g_size, generator=gen),
        grounding_sizes=torch.tensor(sizes),
        grounding_sizes_host=[list(map(int, hw)) for hw in sizes],
        input_ids=input_ids,
        attention_mask=attention,
        labels=labels)
    return inputs, samples


__all__: List[str] = ['make_glamm_batch']
