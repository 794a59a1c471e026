"""A UNETR backbone (Hatamizadeh et al. 2022) for the V-Net's segmentation contract, from MONAI.

VIPR, the vision-transformer protohalo classifier of Alokda & Porciani, is a UNETR: the input cube is cut into
16³-voxel patches, a 12-layer transformer encodes the patch tokens, and a convolutional decoder brings four of its
hidden states back to full resolution with skip connections. MONAI's `monai.networks.nets.UNETR` is that network;
`UNETRBackbone` drops its 1×1×1 output layer so it fits :class:`~cosmoseg.nn.vnet.SegmentationModel` (backbone
features → the project's head → central crop) and Grad-CAM finds its last feature map as ``model.backbone``.

MONAI (and einops, which its attention block uses) is optional: ``pip install "cosmoseg[transformer]"``.
"""

from __future__ import annotations

import torch
from torch import nn

from cosmoseg.nn.vnet import SegmentationModel, make_head

PATCH_SIZE = 16
"""UNETR's patch side in voxels (fixed in MONAI): every input side must be a multiple of it."""
UNETR_NORMS = ("batch", "instance")

__all__ = ["PATCH_SIZE", "UNETR", "UNETRBackbone", "unetr_size_problems"]


def unetr_size_problems(size: int, *, hidden_size: int = 96, num_heads: int = 4) -> list[str]:
    """What is wrong with a UNETR of input side ``size`` voxels and ``hidden_size`` / ``num_heads`` (empty: nothing)."""
    out = []
    if size < PATCH_SIZE or size % PATCH_SIZE:
        out.append(f"the UNETR input side must be a multiple of its {PATCH_SIZE}-voxel patch, got {size}")
    if num_heads < 1 or hidden_size < 1 or hidden_size % num_heads:
        out.append(f"hidden_size ({hidden_size}) must be a positive multiple of num_heads ({num_heads})")
    return out


class UNETRBackbone(nn.Module):
    """MONAI's UNETR without its output layer: ``(B, in_channels, n, n, n)`` → ``(B, feature_size, n, n, n)``.

    ``img_size`` = n, a multiple of 16 (the network's positional embedding is built for that one size);
    ``feature_size``: the decoder's filters at full resolution; ``hidden_size`` / ``num_heads`` / ``mlp_dim``:
    the transformer's token width, attention heads and feed-forward width (MONAI's defaults, 768 / 12 / 3072, are
    ViT-Base; the CPU-sized default here is 96 / 4 / 192); ``norm``: the decoder's ``"instance"`` or ``"batch"``.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        img_size: int,
        feature_size: int = 8,
        hidden_size: int = 96,
        num_heads: int = 4,
        mlp_dim: int | None = None,
        norm: str = "instance",
    ):
        super().__init__()
        problems = unetr_size_problems(img_size, hidden_size=hidden_size, num_heads=num_heads)
        if in_channels < 1 or feature_size < 1:
            problems.append(f"need in_channels >= 1 and feature_size >= 1, got {in_channels}, {feature_size}")
        if norm not in UNETR_NORMS:
            problems.append(f"norm must be one of {UNETR_NORMS}, got {norm!r}")
        if problems:
            raise ValueError("; ".join(problems))
        try:
            import einops  # noqa: F401  (MONAI's attention block needs it and only says so when first built)
            from monai.networks.nets import UNETR as MonaiUNETR
        except ImportError as err:  # an optional dependency
            raise ImportError('the UNETR backbone needs MONAI and einops: pip install "cosmoseg[transformer]"') from err
        self.in_channels = in_channels
        self.img_size = int(img_size)
        self.out_channels = feature_size
        self.unetr = MonaiUNETR(
            in_channels,
            feature_size,
            img_size=img_size,
            feature_size=feature_size,
            hidden_size=hidden_size,
            mlp_dim=mlp_dim or 2 * hidden_size,
            num_heads=num_heads,
            norm_name=norm,
        )
        self.unetr.out = nn.Identity()  # the head of SegmentationModel replaces MONAI's output layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        want = (self.in_channels, self.img_size, self.img_size, self.img_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"this UNETR takes input (B, {self.in_channels}, {self.img_size}, {self.img_size}, {self.img_size}) "
                f"(its positional embedding is built for {self.img_size}^3), got {tuple(x.shape)}"
            )
        return self.unetr(x)


class UNETR(SegmentationModel):
    """`UNETRBackbone` + 1×1×1 head + central crop: ``(B, C, n³)`` → ``(B, out_channels, (n - 2 crop)³)``.

    ``UNETR(3, 7, img_size=48, crop=8)`` maps (B, 3, 48, 48, 48) to (B, 7, 32, 32, 32): 2,784,671 parameters with
    the defaults (feature_size 8, hidden_size 96, 4 heads, mlp_dim 192), most of them in the patch embedding and
    the 12 transformer layers.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        img_size: int,
        feature_size: int = 8,
        hidden_size: int = 96,
        num_heads: int = 4,
        mlp_dim: int | None = None,
        crop: int = 0,
        norm: str = "instance",
    ):
        backbone = UNETRBackbone(
            in_channels,
            img_size=img_size,
            feature_size=feature_size,
            hidden_size=hidden_size,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
            norm=norm,
        )
        super().__init__(backbone, make_head(backbone.out_channels, out_channels), crop)
        self.in_channels = in_channels
        self.out_channels = out_channels
