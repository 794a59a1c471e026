"""V-Net: shapes, central crop, parameter count, input checks, gradients, determinism, head swap."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cosmoseg.nn import SegmentationModel, VNet, VNetBackbone, central_crop, make_head


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(("crop", "out"), [(0, 16), (2, 12)])
def test_output_shape_with_and_without_crop(crop, out):
    model = VNet(2, 1, base_filters=4, depth=2, crop=crop)
    y = model(torch.randn(2, 2, 16, 16, 16))
    assert y.shape == (2, 1, out, out, out)


def test_crop_is_central_part():
    torch.manual_seed(0)
    full = VNet(5, 3, base_filters=4, depth=2).eval()
    cropped = VNet(5, 3, base_filters=4, depth=2, crop=4).eval()
    cropped.load_state_dict(full.state_dict())
    x = torch.randn(1, 5, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(cropped(x), full(x)[..., 4:12, 4:12, 4:12])


def test_parameter_count_default_config():
    assert _n_params(VNet(2, 1)) == 448_153  # stated in the VNet docstring
    assert _n_params(VNet(5, 3)) == 448_843


def test_backbone_features_and_filters_double_per_level():
    bb = VNetBackbone(2, base_filters=4, depth=2)
    assert bb.out_channels == 4
    assert [d[0].out_channels for d in bb.downs] == [8, 16]
    assert bb(torch.randn(1, 2, 8, 8, 8)).shape == (1, 4, 8, 8, 8)


def test_divisibility_error_names_the_size():
    model = VNet(2, 1, depth=3)
    with pytest.raises(ValueError, match=r"\(16, 12, 16\).*2\^depth = 8.*\[12\]"):
        model(torch.randn(1, 2, 16, 12, 16))
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 2, n, n, n\)"):
        model(torch.randn(1, 3, 16, 16, 16))


def test_bad_options():
    with pytest.raises(ValueError, match="norm"):
        VNet(2, 1, norm="group")
    with pytest.raises(ValueError, match="activation"):
        VNet(2, 1, activation="gelu")
    with pytest.raises(ValueError, match="crop"):
        VNet(2, 1, crop=-1)
    with pytest.raises(ValueError, match="cannot trim"):
        central_crop(torch.zeros(1, 1, 8, 8, 8), 4)


@pytest.mark.parametrize(("norm", "activation"), [("instance", "elu"), ("none", "leaky_relu")])
def test_variants_run(norm, activation):
    model = VNet(5, 3, base_filters=4, depth=2, norm=norm, activation=activation)
    assert model(torch.randn(1, 5, 8, 8, 8)).shape == (1, 3, 8, 8, 8)


def test_forward_backward_16_cubed_gives_finite_gradients():
    """Every parameter gets a finite gradient (its time is benchmarks/bench_protohalo.py --train-step's)."""
    torch.manual_seed(0)
    model = VNet(2, 1, crop=2)
    x = torch.randn(1, 2, 16, 16, 16)
    loss = model(x).square().mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_deterministic_under_seed():
    x = torch.randn(1, 2, 8, 8, 8, generator=torch.Generator().manual_seed(3))
    outs = []
    for _ in range(2):
        torch.manual_seed(11)
        model = VNet(2, 1, base_filters=4, depth=2)
        outs.append(model(x))
    assert torch.equal(outs[0], outs[1])


def test_head_swap_to_seven_classes():
    torch.manual_seed(0)
    model = VNet(2, 1, base_filters=4, depth=2, crop=2)
    model.head = make_head(model.backbone.out_channels, 7)
    assert model(torch.randn(1, 2, 16, 16, 16)).shape == (1, 7, 12, 12, 12)
    # the same backbone in a new wrapper with any head module
    head = nn.Sequential(nn.Conv3d(4, 8, 1), nn.ReLU(), nn.Conv3d(8, 7, 1))
    other = SegmentationModel(model.backbone, head, crop=0)
    assert other(torch.randn(1, 2, 8, 8, 8)).shape == (1, 7, 8, 8, 8)


def test_backbone_swap():
    class Tiny(nn.Module):
        out_channels = 6

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv3d(2, 6, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    model = SegmentationModel(Tiny(), make_head(Tiny.out_channels, 3), crop=1)
    assert model(torch.randn(1, 2, 6, 6, 6)).shape == (1, 3, 4, 4, 4)
