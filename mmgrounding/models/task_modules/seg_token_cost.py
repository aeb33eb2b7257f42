"""Matching cost of OpenSeeD's set criterion for multi-token targets.

In LLaVA-Grounding each ground-truth object carries a SET of ``<seg>``
tokens (one box can answer several phrases, one phrase several boxes).
The class cost of query q for object k is the focal "positive minus
negative" cost of q's sigmoid score, averaged over the token columns of
k's set (``OS:modules/matcher.py``)::

    p = sigmoid(logit[q, n])
    pos = alpha * (1 - p) ** gamma * -log(p + eps)
    neg = (1 - alpha) * p ** gamma * -log(1 - p + eps)
    cost[q, k] = mean_{n in T_k} (pos - neg)[q, n]   (0 when T_k is empty)

mmdet's ``FocalLossCost`` takes one label per object and
``BinaryFocalLossCost`` sums the negative term over ALL columns, which
changes the assignment; hence this cost.
"""
from typing import Optional, Union

import torch
from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from mmgrounding.registry import TASK_UTILS


@TASK_UTILS.register_module()
class SegTokenFocalCost(BaseMatchCost):
    """Focal class cost averaged over each object's token set.

    Reads ``pred_instances.token_logits`` [Q, N] (logits against the N real
    ``<seg>`` columns of the image) and ``gt_instances.token_targets``
    [K, N] (bool/0-1: object k is referred to by token n).

    Args:
        weight: cost weight (official 4.0).
        alpha: focal alpha (0.25).
        gamma: focal gamma (2.0).
        eps: added inside the logs (1e-6, official; mmdet uses 1e-12).
    """

    def __init__(self,
                 weight: Union[float, int] = 1.,
                 alpha: float = 0.25,
                 gamma: float = 2.,
                 eps: float = 1e-6) -> None:
        super().__init__(weight=weight)
        self.alpha = alpha
        self.gamma = gamma
        self.eps = eps

    def __call__(self,
                 pred_instances: InstanceData,
                 gt_instances: InstanceData,
                 img_meta: Optional[Union[dict, ConfigDict]] = None,
                 **kwargs) -> Tensor:
        """Cost matrix [Q, K]."""
        logits = pred_instances.token_logits
        targets = gt_instances.token_targets
        if logits.dim() != 2 or targets.dim() != 2 or \
                logits.shape[1] != targets.shape[1]:
            raise ValueError(
                f'token_logits {tuple(logits.shape)} and token_targets '
                f'{tuple(targets.shape)} must be [Q, N] and [K, N]')
        prob = logits.float().sigmoid()
        targets = targets.to(prob.dtype)
        pos = self.alpha * (1 - prob).pow(self.gamma) * \
            -(prob + self.eps).log()
        neg = (1 - self.alpha) * prob.pow(self.gamma) * \
            -(1 - prob + self.eps).log()
        total = (pos - neg) @ targets.t()
        count = targets.sum(1).clamp(min=1)
        return total / count[None, :] * self.weight


@TASK_UTILS.register_module()
class SameImageCost(BaseMatchCost):
    """``weight`` for a query and an object of different images, else 0.

    Lets ONE Hungarian assignment over a whole batch (queries and objects of
    all images concatenated, ``img_idx`` fields saying whose they are) give
    exactly the per-image assignments: with a weight far above every real
    cost and at least as many queries as objects in each image, the optimum
    never pairs across images, and the rest of the cost matrix is
    block-diagonal. One scipy call per prediction set instead of one per
    image (the per-image loop is ~40 % of a tiny training step).
    """

    def __init__(self, weight: Union[float, int] = 1e5) -> None:
        super().__init__(weight=weight)

    def __call__(self,
                 pred_instances: InstanceData,
                 gt_instances: InstanceData,
                 img_meta: Optional[Union[dict, ConfigDict]] = None,
                 **kwargs) -> Tensor:
        """Cost matrix [Q_total, K_total]."""
        pred_img = pred_instances.img_idx
        gt_img = gt_instances.img_idx
        return (pred_img[:, None] != gt_img[None, :]).float() * self.weight


__all__ = ['SegTokenFocalCost', 'SameImageCost']
