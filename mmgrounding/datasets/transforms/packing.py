"""Pack a grounded sample into ``inputs`` and a ``DetDataSample``."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

from mmgrounding.registry import TRANSFORMS
from mmgrounding.structures import GroundingDataError


def _mask_boxes(masks: BitmapMasks) -> torch.Tensor:
    """xyxy pixel box of each mask ([M, 4]; zeros for an empty mask).

    From the rows and columns that hold a pixel (two ``any`` reductions
    for all masks at once, no per-mask ``nonzero``): x0 = first such
    column, x1 = last + 1, likewise y.
    """
    bits = np.asarray(masks.masks).astype(bool, copy=False)
    boxes = np.zeros((len(bits), 4), dtype=np.float32)
    if not len(bits):
        return torch.from_numpy(boxes)
    rows, cols = bits.any(axis=2), bits.any(axis=1)  # [M, H], [M, W]
    full = rows.any(axis=1)
    height, width = rows.shape[1], cols.shape[1]
    boxes[:, 0] = cols.argmax(axis=1)
    boxes[:, 1] = rows.argmax(axis=1)
    boxes[:, 2] = width - cols[:, ::-1].argmax(axis=1)
    boxes[:, 3] = height - rows[:, ::-1].argmax(axis=1)
    boxes[~full] = 0
    return torch.from_numpy(boxes)


@TRANSFORMS.register_module()
class PackGroundingInputs(BaseTransform):
    """Pack the sample as described in docs/data_contract.md §2.6.

    ``inputs``: CHW uint8 RGB tensor of the original image (mmcv loads BGR).

    ``data_samples``: a ``DetDataSample`` with

    - data fields ``input_ids`` and ``labels`` (LongTensor [L]);
    - ``gt_instances``: ``masks`` (BitmapMasks [M, H, W], one per grounding
      token, in token order: the union of the phrase's instances), ``bboxes``
      (FloatTensor [M, 4], the box of each mask), ``labels`` (zeros,
      LongTensor [M]): the targets of ``target_kind='union'`` heads (SAM);
    - ``gt_objects``: one entry per distinct object instance of the record,
      ``masks`` (BitmapMasks [K, H, W]), ``bboxes`` (FloatTensor [K, 4] xyxy
      pixels), ``labels`` (zeros, LongTensor [K]) and ``mask_valid``
      (BoolTensor [K], False for a box-only instance whose mask is empty),
      and ``grounding_instance_ids`` (list of M lists of int): the indices
      into ``gt_objects`` that the i-th grounding token refers to: the
      targets of ``target_kind='instances'`` heads (set prediction,
      OpenSeeD). Both are packed for every sample, so any head trains on any
      dataset;
    - ``region_bboxes`` (FloatTensor [R, 4], xyxy original pixels, one per
      region token; [0, 4] when none);
    - ``visual_prompts`` (list of dicts with float tensors), when sampled;
    - metainfo: every key of ``meta_keys`` present in the results, with
      ``ori_shape``/``img_shape`` from the image and ``gt_phrases`` /
      ``gt_captions`` defaulting to empty lists (region-question views
      add ``question``, ``gt_answer`` and ``answer_field``; ``ann_file`` /
      ``record_id`` let a metric name bad ground truth).

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_id', 'img_path',
                                             'ori_shape', 'img_shape',
                                             'task', 'source', 'gt_phrases',
                                             'gt_captions', 'prompt',
                                             'sample_idx', 'ann_file',
                                             'record_id', 'question',
                                             'gt_answer', 'answer_field')
                 ) -> None:
        self.meta_keys = tuple(meta_keys)

    @staticmethod
    def _region_boxes(results: dict) -> torch.Tensor:
        boxes = []
        for k, region in enumerate(results.get('regions') or []):
            box = region.get('bbox')
            if box is None and region.get('instance_id') is not None \
                    and 'gt_bboxes' in results:
                box = results['gt_bboxes'].tensor[region['instance_id']]
            if box is None:
                raise GroundingDataError.from_results(
                    results, f'regions[{k}]', 'region has no bbox')
            boxes.append(torch.as_tensor(box, dtype=torch.float32))
        if not boxes:
            return torch.zeros((0, 4), dtype=torch.float32)
        return torch.stack(boxes)

    @staticmethod
    def _objects(results: dict, shape) -> InstanceData:
        """Per-instance targets ([K] entries) from LoadGroundingAnnotations.
        """
        objects = InstanceData()
        masks = results.get('gt_masks')
        if masks is None:
            h, w = results.get('ori_shape', shape)[:2]
            masks = BitmapMasks(
                np.zeros((0, int(h), int(w)), dtype=np.uint8), int(h), int(w))
        boxes = results.get('gt_bboxes')
        if boxes is None:
            boxes = torch.zeros((0, 4))
        boxes = torch.as_tensor(
            getattr(boxes, 'tensor', boxes),
            dtype=torch.float32).reshape(-1, 4)
        if len(boxes) != len(masks):
            raise GroundingDataError.from_results(
                results, 'gt_bboxes',
                f'{len(boxes)} instance boxes for {len(masks)} masks')
        valid = results.get('gt_mask_valid')
        objects.masks = masks
        objects.bboxes = boxes
        objects.labels = torch.zeros(len(masks), dtype=torch.long)
        objects.mask_valid = torch.ones(len(masks), dtype=torch.bool) \
            if valid is None else torch.as_tensor(
                np.asarray(valid, dtype=bool))
        return objects

    @staticmethod
    def _prompts(results: dict) -> list:
        packed = []
        for prompt in results['visual_prompts']:
            packed.append({
                key: torch.from_numpy(np.asarray(value, dtype=np.float32))
                if isinstance(value, np.ndarray) else value
                for key, value in prompt.items()
            })
        return packed

    def transform(self, results: dict) -> dict:
        for key in ('img', 'input_ids', 'labels', 'grounding_masks'):
            if key not in results:
                raise GroundingDataError.from_results(
                    results, key, f'{key!r} missing; the pipeline needs '
                    'LoadImageFromFile, LoadGroundingAnnotations, '
                    'FormatGroundedConversation and TokenizeConversation '
                    'before PackGroundingInputs')
        img = results['img']
        if img.ndim == 2:
            img = img[..., None].repeat(3, axis=2)
        rgb = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1))
        inputs = torch.from_numpy(rgb.astype(np.uint8, copy=False))

        sample = DetDataSample()
        sample.input_ids = results['input_ids']
        sample.labels = results['labels']
        masks = results['grounding_masks']
        gt = InstanceData()
        gt.masks = masks
        gt.bboxes = _mask_boxes(masks)
        gt.labels = torch.zeros(len(masks), dtype=torch.long)
        sample.gt_instances = gt
        sample.gt_objects = self._objects(results, img.shape[:2])
        sample.grounding_instance_ids = [
            [int(k) for k in ids]
            for ids in results.get('grounding_instance_ids') or []
        ]
        if len(sample.grounding_instance_ids) != len(masks):
            raise GroundingDataError.from_results(
                results, 'grounding_instance_ids',
                f'{len(sample.grounding_instance_ids)} instance lists for '
                f'{len(masks)} grounding masks')
        sample.region_bboxes = self._region_boxes(results)
        if results.get('visual_prompts') is not None:
            sample.visual_prompts = self._prompts(results)

        meta = {}
        for key in self.meta_keys:
            if key in results:
                meta[key] = results[key]
        meta['ori_shape'] = tuple(results.get('ori_shape', img.shape[:2]))
        meta['img_shape'] = tuple(results.get('img_shape', img.shape[:2]))
        meta.setdefault('gt_phrases', [])
        meta['gt_captions'] = list(results.get('gt_captions') or [])
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
