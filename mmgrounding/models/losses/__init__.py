"""Losses: GLaMM's mask BCE/DICE as mmdet loss configs, batch averaging."""
from .mask_losses import (GLAMM_LOSS_DICE, GLAMM_LOSS_MASK,
                          multi_image_mask_loss)

__all__ = ['GLAMM_LOSS_MASK', 'GLAMM_LOSS_DICE', 'multi_image_mask_loss']
