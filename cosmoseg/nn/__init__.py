"""Shared network blocks, losses, the training loop and checkpoints."""

from cosmoseg.nn.checkpoints import export_weights, load_checkpoint, read_checkpoint, save_checkpoint
from cosmoseg.nn.gradcam import grad_cam
from cosmoseg.nn.losses import (
    background_push_loss,
    balanced_cross_entropy,
    centre_offset_loss,
    discriminative_loss,
    small_halo_weights,
)
from cosmoseg.nn.training import NonFiniteLossError, Trainer
from cosmoseg.nn.vnet import ResidualBlock, SegmentationModel, VNet, VNetBackbone, central_crop, make_head

__all__ = [
    "NonFiniteLossError",
    "ResidualBlock",
    "SegmentationModel",
    "Trainer",
    "VNet",
    "VNetBackbone",
    "background_push_loss",
    "balanced_cross_entropy",
    "central_crop",
    "centre_offset_loss",
    "discriminative_loss",
    "export_weights",
    "grad_cam",
    "load_checkpoint",
    "make_head",
    "read_checkpoint",
    "save_checkpoint",
    "small_halo_weights",
]
