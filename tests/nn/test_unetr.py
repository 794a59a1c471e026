"""The UNETR backbone (MONAI) behind the VIPR mass-bin classifier: shapes, crop, clear errors, Grad-CAM."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("monai")
pytest.importorskip("einops")

from cosmoseg.nn import grad_cam
from cosmoseg.nn.unetr import UNETR, unetr_size_problems

SMALL = {"feature_size": 2, "hidden_size": 8, "num_heads": 2}


def test_unetr_maps_a_crop_to_class_scores_on_the_central_part() -> None:
    torch.manual_seed(0)
    model = UNETR(3, 7, img_size=32, crop=8, **SMALL).eval()
    x = torch.randn(2, 3, 32, 32, 32)
    with torch.no_grad():
        out = model(x)
        features = model.backbone(x)
    assert out.shape == (2, 7, 16, 16, 16)
    assert features.shape == (2, 2, 32, 32, 32)  # MONAI's output layer is dropped: the backbone gives features
    # the head is the project's 1x1x1 convolution, the crop the central part
    expected = torch.nn.functional.conv3d(features, model.head.weight, model.head.bias)[..., 8:24, 8:24, 8:24]
    assert torch.allclose(out, expected, atol=1e-5)


def test_unetr_refuses_sizes_off_its_patch() -> None:
    assert unetr_size_problems(48) == []
    assert "multiple of its 16-voxel patch, got 40" in unetr_size_problems(40)[0]
    assert "hidden_size (10) must be a positive multiple of num_heads (4)" in unetr_size_problems(32, hidden_size=10)[0]
    with pytest.raises(ValueError, match="multiple of its 16-voxel patch, got 24"):
        UNETR(2, 3, img_size=24, **SMALL)
    model = UNETR(2, 3, img_size=16, **SMALL)
    with pytest.raises(ValueError, match=r"takes input \(B, 2, 16, 16, 16\).*got \(1, 2, 32, 32, 32\)"):
        model(torch.randn(1, 2, 32, 32, 32))


def test_grad_cam_finds_the_unetr_feature_map_and_is_non_negative() -> None:
    torch.manual_seed(1)
    model = UNETR(2, 3, img_size=16, crop=4, **SMALL)
    cam = grad_cam(model, torch.randn(1, 2, 16, 16, 16), 2)
    assert cam.shape == (1, 16, 16, 16) and bool((cam >= 0).all()) and bool(torch.isfinite(cam).all())
