"""Set criterion of LLaVA-Grounding's OpenSeeD head, from mmdet parts.

For every prediction set (final layer, the earlier decoder layers, the
initial prediction and the encoder proposals) and every image, queries are
matched one-to-one to the image's ground-truth objects by mmdet's
``HungarianAssigner`` with the official costs (class 4 via
:class:`SegTokenFocalCost`, mask BCE 5, dice 5, L1 5, GIoU 2; the mask costs
on ``match_num_points`` uniformly drawn points shared by all queries and
objects of the image). Then (``OS:modules/criterion.py``):

- class: sigmoid focal loss over the real token columns of every query, the
  target of a matched query being its object's multi-hot token set, summed
  and divided by ``N_pad * num_masks / 10`` (N_pad = padded token width of
  the batch; the official ``mean(-1).mean(-1).sum() * 10 / num_masks * Q``);
- mask: BCE mean over ``num_points`` importance-sampled points (oversample
  3, importance 0.75, mmdet ``get_uncertain_point_coords_with_randomness``)
  per matched query, and naive dice with +1 smoothing, each / num_masks;
- box: L1 on normalised cxcywh and GIoU, / num_masks;

``num_masks`` = ground-truth objects in the batch, averaged over ranks,
at least 1. Every term is multiplied by its weight and by
``loss_weight_multiplier`` (0.1 in LLaVA-G stage 2).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import mmdet.models.losses  # noqa: F401 (registers mmdet losses)
import mmdet.models.task_modules  # noqa: F401 (registers mmdet costs)
import torch
from mmcv.ops import point_sample
from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import reduce_mean
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from mmgrounding.registry import MODELS, TASK_UTILS
from ..task_modules import SameImageCost, SegTokenFocalCost  # noqa: F401,E501

#: The official matcher (``openseed_model.py``: COST_* weights).
OPENSEED_ASSIGNER = dict(
    type='mmdet.HungarianAssigner',
    match_costs=[
        dict(type='mmgrounding.SegTokenFocalCost', weight=4.0),
        dict(type='mmdet.CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
        dict(type='mmdet.DiceCost', weight=5.0, pred_act=True, eps=1.0),
        dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0),
        # batch-level assignment == per-image assignments (see its doc)
        dict(type='mmgrounding.SameImageCost', weight=1e5),
    ])


@MODELS.register_module()
class OpenSeeDCriterion(BaseModule):
    """Hungarian matching + OpenSeeD losses over several prediction sets.

    Args:
        assigner: mmdet assigner config (:data:`OPENSEED_ASSIGNER`).
        loss_cls / loss_mask / loss_dice / loss_bbox / loss_iou: mmdet loss
            configs (weights 4, 5, 5, 5, 2).
        num_points: sampled points per mask for the mask losses (12544).
        oversample_ratio / importance_sample_ratio: point sampling (3, 0.75).
        match_num_points: uniform points for the matching costs (12544).
        cls_normalizer: the official factor 10 of the class loss.
        loss_weight_multiplier: multiplies every loss (official
            ``WEIGHT_MULTIPLIER``).
    """

    def __init__(self,
                 assigner: dict = OPENSEED_ASSIGNER,
                 loss_cls: dict = dict(
                     type='mmdet.FocalLoss',
                     use_sigmoid=True,
                     gamma=2.0,
                     alpha=0.25,
                     reduction='mean',
                     loss_weight=4.0),
                 loss_mask: dict = dict(
                     type='mmdet.CrossEntropyLoss',
                     use_sigmoid=True,
                     reduction='mean',
                     loss_weight=5.0),
                 loss_dice: dict = dict(
                     type='mmdet.DiceLoss',
                     use_sigmoid=True,
                     activate=True,
                     reduction='mean',
                     naive_dice=True,
                     eps=1.0,
                     loss_weight=5.0),
                 loss_bbox: dict = dict(type='mmdet.L1Loss', loss_weight=5.0),
                 loss_iou: dict = dict(type='mmdet.GIoULoss', loss_weight=2.0),
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 match_num_points: int = 12544,
                 cls_normalizer: float = 10.0,
                 loss_weight_multiplier: float = 1.0,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.assigner = TASK_UTILS.build(assigner)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.match_num_points = match_num_points
        self.cls_normalizer = cls_normalizer
        self.loss_weight_multiplier = loss_weight_multiplier

    # Point sampling (separate methods: tests fix the points).
    def sample_match_points(self, batch_size: int,
                            device: torch.device) -> Tensor:
        """Uniform points in [0, 1]^2 (x, y), one set per image: [B, P, 2]."""
        return torch.rand(batch_size, self.match_num_points, 2, device=device)

    def sample_loss_points(self, mask_logits: Tensor) -> Tensor:
        """Importance-sampled points of [M, 1, h, w] logits: [M, P, 2]."""
        return get_uncertain_point_coords_with_randomness(
            mask_logits, None, self.num_points, self.oversample_ratio,
            self.importance_sample_ratio)

    @torch.no_grad()
    def match(self, pred: Dict[str, Tensor], prompt_mask: Tensor,
              targets: Sequence[InstanceData]) -> List[Tuple[Tensor, Tensor]]:
        """Hungarian assignment of one prediction set, per image.

        The queries and objects of all images go through ONE
        ``assigner.assign`` call when the assigner has a
        :class:`SameImageCost`, which gives exactly the per-image optima
        (see there); without it, or when an image has more objects than
        queries, one call per image.

        Args:
            pred: ``logits`` [B, Q, N], ``masks`` [B, Q, h, w], ``boxes``
                [B, Q, 4] (normalised cxcywh).
            prompt_mask: [B, N] real token columns.
            targets: per image ``InstanceData(masks [K, H, W] float in the
                same normalised frame, bboxes [K, 4] normalised cxcywh,
                token_targets [K, N] bool, labels [K])``.

        Returns:
            per image ``(query_idx, gt_idx)`` long tensors.
        """
        logits, masks, boxes = pred['logits'], pred['masks'], pred['boxes']
        batch_size, num_queries = logits.shape[:2]
        device = logits.device
        empty = torch.zeros((0, ), dtype=torch.long, device=device)
        out = [(empty, empty) for _ in range(batch_size)]
        images = [b for b, gt in enumerate(targets) if len(gt)]
        if not images:
            return out
        coords = self.sample_match_points(batch_size, masks.device)
        point_preds = point_sample(masks.float(), coords)  # [B, Q, P]
        pred_xyxy = bbox_cxcywh_to_xyxy(boxes.float())
        # padded columns: logit 0, never a target (the cost only reads
        # the columns of each object's token set)
        cols = prompt_mask.bool()
        token_logits = logits.float().masked_fill(~cols[:, None, :], 0.)
        counts = [len(targets[b]) for b in images]
        owner = torch.cat([
            torch.full((k, ), b, dtype=torch.long, device=device)
            for b, k in zip(images, counts)
        ])
        gt_masks = torch.cat([targets[b].masks for b in images]).float()
        gt_points = point_sample(gt_masks[:, None], coords[owner])[:, 0]
        gt_tokens = torch.cat([targets[b].token_targets
                               for b in images]) & cols[owner]
        gt_xyxy = bbox_cxcywh_to_xyxy(
            torch.cat([targets[b].bboxes for b in images]).float())
        gt_labels = torch.cat([targets[b].labels for b in images])
        img = torch.tensor(images, device=device)
        batched = any(
            isinstance(c, SameImageCost)
            for c in getattr(self.assigner, 'match_costs', []))
        if batched and max(counts) <= num_queries:
            groups = [list(range(len(images)))]
        else:
            groups = [[j] for j in range(len(images))]
        starts = [0] + torch.cumsum(torch.tensor(counts), 0).tolist()
        for group in groups:
            bs = img[group]
            gsel = torch.cat([
                torch.arange(starts[j], starts[j + 1], device=device)
                for j in group
            ])
            preds = InstanceData(
                token_logits=token_logits[bs].flatten(0, 1),
                masks=point_preds[bs].flatten(0, 1),
                bboxes=pred_xyxy[bs].flatten(0, 1),
                img_idx=bs.repeat_interleave(num_queries))
            gts = InstanceData(
                token_targets=gt_tokens[gsel],
                masks=gt_points[gsel],
                bboxes=gt_xyxy[gsel],
                labels=gt_labels[gsel],
                img_idx=owner[gsel])
            result = self.assigner.assign(
                preds, gts, img_meta=dict(img_shape=(1, 1)))
            gt_inds = result.gt_inds.view(len(group), num_queries)
            offset = 0
            for row, j in enumerate(group):
                b = images[j]
                query_idx = torch.nonzero(gt_inds[row] > 0).flatten()
                gt_idx = gt_inds[row, query_idx] - 1 - offset
                if len(gt_idx) and (gt_idx.min() < 0
                                    or gt_idx.max() >= counts[j]):
                    raise RuntimeError('assignment crossed images; raise '
                                       'SameImageCost.weight')
                out[b] = (query_idx, gt_idx)
                offset += counts[j]
        return out

    def num_masks(self, targets: Sequence[InstanceData],
                  device: torch.device) -> Tensor:
        """Objects of the batch, averaged over ranks, at least 1."""
        total = torch.tensor(
            float(sum(len(t) for t in targets)), device=device)
        return reduce_mean(total).clamp(min=1.0)

    def loss_single(self, pred: Dict[str, Tensor], prompt_mask: Tensor,
                    targets: Sequence[InstanceData],
                    num_masks: Tensor) -> Dict[str, Tensor]:
        """The five losses of one prediction set (weighted, multiplied)."""
        logits, masks, boxes = pred['logits'], pred['masks'], pred['boxes']
        batch_size, num_queries, width = logits.shape
        indices = self.match(pred, prompt_mask, targets)
        zero = (logits.sum() + masks.sum() + boxes.sum()) * 0.
        # class: multi-hot targets over the real columns of every query
        if width == 0 or not bool(prompt_mask.any()):
            loss_cls = zero
        else:
            cls_target = logits.new_zeros(logits.shape)
            for b, (q_idx, g_idx) in enumerate(indices):
                if len(q_idx):
                    cls_target[b, q_idx] = \
                        targets[b].token_targets[g_idx].to(logits.dtype)
            weight = prompt_mask[:, None, :].to(logits.dtype).expand_as(
                logits)
            loss_cls = self.loss_cls(
                logits.reshape(-1, width).float(),
                cls_target.reshape(-1, width),
                weight=weight.reshape(-1, width),
                avg_factor=width * num_masks / self.cls_normalizer)
        batch_idx = torch.cat([
            torch.full_like(q_idx, b) for b, (q_idx, _) in enumerate(indices)
        ])
        query_idx = torch.cat([q_idx for q_idx, _ in indices])
        if len(query_idx) == 0:
            losses = dict(
                loss_cls=loss_cls,
                loss_mask=zero,
                loss_dice=zero,
                loss_bbox=zero,
                loss_iou=zero)
        else:
            gt_masks = torch.cat([
                targets[b].masks[g_idx]
                for b, (_, g_idx) in enumerate(indices)
            ])
            gt_boxes = torch.cat([
                targets[b].bboxes[g_idx]
                for b, (_, g_idx) in enumerate(indices)
            ]).float()
            src_masks = masks[batch_idx, query_idx][:, None].float()
            with torch.no_grad():
                coords = self.sample_loss_points(src_masks)
                point_targets = point_sample(gt_masks[:, None].float(),
                                             coords).squeeze(1)
            point_preds = point_sample(src_masks, coords).squeeze(1)
            num_points = point_preds.shape[1]
            src_boxes = boxes[batch_idx, query_idx].float()
            losses = dict(
                loss_cls=loss_cls,
                loss_mask=self.loss_mask(
                    point_preds.reshape(-1),
                    point_targets.reshape(-1),
                    avg_factor=num_masks * num_points),
                loss_dice=self.loss_dice(
                    point_preds, point_targets, avg_factor=num_masks),
                loss_bbox=self.loss_bbox(
                    src_boxes, gt_boxes, avg_factor=num_masks),
                loss_iou=self.loss_iou(
                    bbox_cxcywh_to_xyxy(src_boxes),
                    bbox_cxcywh_to_xyxy(gt_boxes),
                    avg_factor=num_masks))
        return {
            k: v * self.loss_weight_multiplier
            for k, v in losses.items()
        }

    def forward(self,
                predictions: Sequence[Tuple[str, Dict[str, Tensor]]],
                prompt_mask: Tensor,
                targets: Sequence[InstanceData],
                num_masks: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Losses of all prediction sets, keys prefixed by each set's name.

        Args:
            predictions: ``(prefix, pred)`` pairs, e.g. ``('', final)``,
                ``('d0.', initial)``, ``('enc_', proposals)``.
            prompt_mask: [B, N].
            targets: per image targets (see :meth:`match`).
            num_masks: override of the normaliser (default
                :meth:`num_masks`).
        """
        if len(targets) != prompt_mask.shape[0]:
            raise ValueError(f'{len(targets)} target sets for a batch of '
                             f'{prompt_mask.shape[0]}')
        if num_masks is None:
            num_masks = self.num_masks(targets, prompt_mask.device)
        losses = {}
        for prefix, pred in predictions:
            for key, value in self.loss_single(pred, prompt_mask, targets,
                                               num_masks).items():
                losses[prefix + key] = value
        return losses


__all__ = ['OpenSeeDCriterion', 'OPENSEED_ASSIGNER']
