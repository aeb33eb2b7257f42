"""GLaMM's mask losses, expressed with mmdet's loss modules.

GLaMM (``model/GLaMM.py``) defines, for a batch whose images carry M_i masks
each (M = sum M_i) at their own original resolution:

- BCE: sigmoid binary cross-entropy, averaged over the pixels of each mask,
  summed over masks and divided by M (weight 2.0).
- DICE: on sigmoid probabilities p and targets g of each mask,
  ``1 - (2 * sum(p / 1000 * g) + 1e-6)
  / (sum(p / 1000) + sum(g / 1000) + 1e-6)``,
  summed over masks and divided by M (weight 0.5).

Multiplying numerator and denominator of the DICE ratio by 1000 shows it is
mmdet's naive dice ``(2 * sum(p * g) + eps) / (sum(p) + sum(g) + eps)`` with
``eps = 1e-3``; the BCE is mmdet's sigmoid ``CrossEntropyLoss`` with
``reduction='mean'`` per image. So mmdet's ``CrossEntropyLoss`` and
``DiceLoss`` reproduce both exactly; only the averaging over images of
different sizes (``multi_image_mask_loss``) is ours.
"""
from typing import Callable, Sequence

from torch import Tensor

#: GLaMM's mask BCE (weight 2.0) as an mmdet loss config.
GLAMM_LOSS_MASK = dict(
    type='mmdet.CrossEntropyLoss',
    use_sigmoid=True,
    reduction='mean',
    loss_weight=2.0)

#: GLaMM's DICE (weight 0.5) as an mmdet loss config (see module docstring).
GLAMM_LOSS_DICE = dict(
    type='mmdet.DiceLoss',
    use_sigmoid=True,
    activate=True,
    naive_dice=True,
    eps=1e-3,
    reduction='mean',
    loss_weight=0.5)


def multi_image_mask_loss(loss_fn: Callable, preds: Sequence[Tensor],
                          targets: Sequence[Tensor]) -> Tensor:
    """Average a per-mask loss over all masks of a batch of images.

    Each image's masks have their own size, so ``loss_fn`` (an mmdet loss
    module supporting ``reduction_override``) is called per image with
    ``reduction_override='mean'``. For a mask BCE this is the mean over the
    pixels of that image's masks, for a dice loss the mean over its masks;
    multiplying by the image's mask count and dividing by the batch's total
    gives the per-mask average of GLaMM.

    Args:
        loss_fn: mmdet-style loss module.
        preds: per image [M_i, H_i, W_i] logits.
        targets: per image [M_i, H_i, W_i] binary targets.

    Returns:
        Scalar tensor. Callers handle the batch with no mask at all (M = 0).
    """
    total = sum(len(p) for p in preds)
    if total == 0:
        raise ValueError('multi_image_mask_loss needs at least one mask')
    loss = 0.
    for pred, target in zip(preds, targets):
        if len(pred) == 0:
            continue
        loss = loss + loss_fn(
            pred.float(), target.to(pred.device).float(),
            reduction_override='mean') * len(pred)
    return loss / total


__all__ = ['GLAMM_LOSS_MASK', 'GLAMM_LOSS_DICE', 'multi_image_mask_loss']
