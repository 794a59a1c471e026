"""Grad-CAM (Selvaraju et al. 2017) for 3-D segmentation networks, through captum's ``LayerGradCam``.

For a segmentation net the "class score" is the sum of the class's logit over the output voxels (or over a chosen
region of them, Vinogradova et al. 2020): Grad-CAM weights each channel of a layer's activations A_c by the mean
over voxels of ∂score/∂A_c, sums the weighted channels, keeps the positive part and brings the map to the input's
grid (trilinear). It answers "which input voxels made the net say class k here".
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["grad_cam"]


def grad_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    target_class: int,
    *,
    layer: nn.Module | None = None,
    region: torch.Tensor | None = None,
) -> torch.Tensor:
    """The Grad-CAM map of class ``target_class`` of a segmentation net, on the input grid.

    ``model``: ``(B, C, *spatial_in) -> (B, K, *spatial_out)`` logits, e.g. a :class:`~cosmoseg.nn.VNet`;
    ``inputs``: ``(B, C, *spatial_in)``; ``layer``: the module whose activations are weighted (default:
    ``model.backbone``, the last feature map before the head); ``region``: optional ``(B, *spatial_out)`` weights
    (e.g. a bool mask of the voxels of one protohalo) over which the class logit is summed (default: every output
    voxel). Returns ``(B, *spatial_in)`` float32, ≥ 0. Needs captum (``pip install "cosmoseg[explain]"``).
    """
    try:
        from captum.attr import LayerAttribution, LayerGradCam
    except ImportError as err:  # an optional dependency
        raise ImportError('Grad-CAM needs captum: pip install "cosmoseg[explain]" (or pip install captum)') from err
    if layer is None:
        layer = getattr(model, "backbone", None)
        if layer is None:
            raise ValueError("the model has no 'backbone': give the layer whose activations Grad-CAM weights")
    if inputs.ndim < 3:
        raise ValueError(f"inputs must be (B, C, *spatial), got shape {tuple(inputs.shape)}")

    def score(x: torch.Tensor) -> torch.Tensor:
        out = model(x)
        if not 0 <= target_class < out.shape[1]:
            raise ValueError(f"target_class {target_class} is not one of the model's {out.shape[1]} classes")
        logit = out[:, target_class]
        if region is not None:
            if region.shape != logit.shape:
                raise ValueError(f"region {tuple(region.shape)} must have the output's shape {tuple(logit.shape)}")
            logit = logit * region.to(logit.dtype)
        return logit.flatten(1).sum(1)

    was_training = model.training
    model.eval()
    try:
        cam = LayerGradCam(score, layer).attribute(inputs, relu_attributions=True)
    finally:
        model.train(was_training)
    spatial = tuple(inputs.shape[2:])
    if tuple(cam.shape[2:]) != spatial:
        cam = LayerAttribution.interpolate(cam, spatial, interpolate_mode="trilinear")
    return cam[:, 0].detach().float()
