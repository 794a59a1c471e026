"""Grad-CAM of toy segmentation nets whose answer is known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cosmoseg.nn import SegmentationModel, VNet, grad_cam

captum = pytest.importorskip("captum")


class OneOctant(nn.Module):
    """A backbone that sees only the first octant of its input: the features are the input there, 0 elsewhere."""

    out_channels = 2

    def __init__(self, n: int) -> None:
        super().__init__()
        mask = torch.zeros(n, n, n)
        mask[: n // 2, : n // 2, : n // 2] = 1
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


def test_a_net_that_looks_at_one_octant_has_grad_cam_zero_elsewhere() -> None:
    torch.manual_seed(0)
    n = 8
    model = SegmentationModel(OneOctant(n), nn.Conv3d(2, 3, 1))
    inputs = torch.randn(2, 2, n, n, n)
    for k in range(3):
        cam = grad_cam(model, inputs, k)
        assert cam.shape == (2, n, n, n) and bool((cam >= 0).all())
        outside = torch.ones(n, n, n, dtype=torch.bool)
        outside[: n // 2, : n // 2, : n // 2] = False
        assert torch.all(cam[:, outside] == 0)
        assert bool((cam[:, ~outside] > 0).any())
    # by hand: the weights are the head's (the mean gradient of Σ logit_k over voxels is w_kc), cam = ReLU(Σ_c w_kc A_c)
    w = model.head.weight[1, :, 0, 0, 0].detach()
    want = torch.relu((w[None, :, None, None, None] * model.backbone(inputs)).sum(1))
    assert torch.allclose(grad_cam(model, inputs, 1), want, atol=1e-5)


def test_grad_cam_of_a_vnet_on_its_input_grid_and_errors() -> None:
    torch.manual_seed(1)
    net = VNet(2, 3, base_filters=2, depth=1, crop=2)
    inputs = torch.randn(1, 2, 8, 8, 8)
    region = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    region[0, 0, 0, 0] = True
    cam = grad_cam(net, inputs, 2, region=region, layer=net.backbone)
    assert cam.shape == (1, 8, 8, 8) and bool(torch.isfinite(cam).all()) and bool((cam >= 0).all())
    assert net.training  # left as it was
    with pytest.raises(ValueError, match="target_class 5"):
        grad_cam(net, inputs, 5)
    with pytest.raises(ValueError, match="region"):
        grad_cam(net, inputs, 0, region=torch.ones(1, 8, 8, 8))
