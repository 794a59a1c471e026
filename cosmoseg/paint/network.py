"""dm2gal networks (Kasmanoff et al.): dark matter + (sub)halo fields -> stellar mass.

Inputs are two-channel cubes of ``log10(1 + M)`` (M in Msun/h per voxel) of the dark-matter mass field and of the
mass-weighted (sub)halo field; outputs are ``log10(1 + M*)`` (M* in Msun/h per voxel).

* :class:`Dm2Gal` — the published per-voxel network: six blocks alternating [large-kernel stride-1 convolution,
  batch norm, ReLU] and [3³ stride-2 convolution, batch norm, ReLU], flattened, then two fully connected layers.
  A ``(B, 2, 65, 65, 65)`` crop gives ``(B,)``, the stellar mass of the central voxel.
* :func:`dilated_equivalent` — the *same* weights run fully convolutionally ("à trous" trick): every stride-2
  convolution becomes stride 1 and every later convolution's dilation is doubled per stride removed; the first
  fully connected layer becomes a convolution with the final feature map's kernel and the accumulated dilation, the
  second a 1×1×1 convolution. On a ``(B, 2, s+64, s+64, s+64)`` input its output ``(B, 1, s, s, s)`` at voxel ``v``
  equals ``Dm2Gal`` on the 65³ crop whose first corner is ``v`` (centred on input voxel ``v + 32``), in eval mode.
* :class:`Dm2GalFCN` — the successor (default): a full-resolution local path beside a dilated context path on
  pooled cells (dm2gal's window at a fraction of its cost), with an occupancy logit (does the voxel host a galaxy
  above the mass threshold) and a Gaussian mixture of its ``log10(1 + M*)`` per voxel.

Geometry. With the default ``large_kernel = 7`` a 65³ input reduces *cleanly* — every stride-2 convolution sees an
odd size, so no voxel is dropped — as 65 → 59 → 29 → 23 → 11 → 5 → 2, the flatten is ``C × 2³`` and the receptive
field is exactly the 65³ crop, centred. The paper only says ``k ≥ 5``; with ``k = 5`` a 65³ input does *not* reduce
cleanly (65 → 61 → 30 → 26 → 12 → 8 → 3 drops the last row at two stride-2 layers: the receptive field is 59³,
off-centre by 3 voxels), so it is rejected; ``k = 5`` is valid with ``input_size`` 43, 51, 59, 67, ...
(:func:`valid_input_sizes`). The valid sizes are ``1 + 7 (k - 1) + 14 + 8 (f - 1)`` for a final map of side ``f``.

Normalisation. Batch norm is used everywhere (also in :class:`Dm2GalFCN`): in eval mode it is a fixed per-channel
affine map, so a voxel's prediction does not depend on the tile it is computed in and periodic tiles stitch
exactly. GroupNorm/InstanceNorm would normalise over each tile's spatial extent and break that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cosmoseg.paint.fields import from_log_mass, to_log_mass

__all__ = [
    "DEFAULT_CHANNELS",
    "HINGE_KNOTS",
    "Dm2Gal",
    "Dm2GalDilated",
    "Dm2GalFCN",
    "dilated_equivalent",
    "dm2gal_sizes",
    "valid_input_sizes",
]

DEFAULT_CHANNELS: tuple[int, ...] = (8, 8, 16, 16, 32, 32)
MAX_LOG_MSTAR = 13.0
"""Largest log10(1 + M*/(Msun/h)) the successor paints in one voxel (above the most massive galaxies)."""
HINGE_KNOTS = (11.5, 12.0, 12.5, 13.0, 13.5, 14.0)
"""Knots (log10 Msun/h) of the successor's hinge features (``Dm2GalFCN(hinges=1)``): from below a 20-particle halo
of the default suites (~10^11.9) to 10^14, above which a 100 Mpc/h box holds a few haloes (the fit goes on
straight)."""


def _block_kernel_stride(i: int, large_kernel: int) -> tuple[int, int]:
    """Kernel and stride of block ``i`` of the per-voxel network (even: large kernel, stride 1; odd: 3, stride 2)."""
    return (large_kernel, 1) if i % 2 == 0 else (3, 2)


def _reduce(input_size: int, large_kernel: int, n_blocks: int) -> tuple[list[int], str | None]:
    """Sides after each block, and the reason the reduction is not clean (``None`` when it is)."""
    sizes = [int(input_size)]
    if input_size < 1 or input_size % 2 == 0:
        return sizes, f"input_size must be a positive odd number (a central voxel), got {input_size}"
    for i in range(n_blocks):
        kernel, stride = _block_kernel_stride(i, large_kernel)
        s = sizes[-1]
        if s < kernel or (stride == 2 and (s - kernel) % 2):
            return sizes, f"block {i + 1} (kernel {kernel}, stride {stride}) gets side {s}; sides so far {sizes}"
        sizes.append((s - kernel) // stride + 1)
    return sizes, None


def dm2gal_sizes(input_size: int, large_kernel: int, n_blocks: int = 6) -> tuple[int, ...]:
    """Spatial sides ``(input_size, after block 1, ..., after block n_blocks)`` of the per-voxel network.

    Raises ``ValueError`` unless the input reduces cleanly: odd ``input_size`` (there is a central voxel), every
    convolution fits, every stride-2 convolution sees an odd side (no voxel dropped), so that the receptive field
    is the whole input.
    """
    if large_kernel < 3 or large_kernel % 2 == 0:
        raise ValueError(f"large_kernel must be odd and >= 3, got {large_kernel}")
    if n_blocks < 1:
        raise ValueError(f"the network needs at least one block, got {n_blocks}")
    sizes, problem = _reduce(int(input_size), large_kernel, n_blocks)
    if problem is not None:
        near = valid_input_sizes(large_kernel, n_blocks, max(1, input_size - 24), input_size + 24)
        raise ValueError(
            f"input_size={input_size} does not reduce cleanly with large_kernel={large_kernel}: {problem}. "
            f"Valid input sizes near {input_size}: {near}"
        )
    return tuple(sizes)


def valid_input_sizes(large_kernel: int, n_blocks: int = 6, low: int = 1, high: int = 128) -> list[int]:
    """The input sides in ``[low, high]`` that reduce cleanly (see :func:`dm2gal_sizes`)."""
    return [s for s in range(max(1, low), high + 1) if _reduce(s, large_kernel, n_blocks)[1] is None]


def _check_channels(in_channels: int, channels: Sequence[int], hidden: int) -> tuple[int, ...]:
    channels = tuple(int(c) for c in channels)
    if in_channels < 1 or hidden < 1 or not channels or min(channels) < 1:
        raise ValueError(
            f"in_channels, hidden and every block's channels must be positive (and at least one block), got "
            f"in_channels={in_channels}, channels={channels}, hidden={hidden}"
        )
    return channels


def _block(c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Convolution (valid, no bias: batch norm follows) + BatchNorm3d + ReLU."""
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, kernel, stride=stride, dilation=dilation, bias=False),
        nn.BatchNorm3d(c_out),
        nn.ReLU(inplace=True),
    )


class Dm2Gal(nn.Module):
    """The published per-voxel dm2gal network: ``(B, C_in, s, s, s)`` crop -> ``(B,)`` ``log10(1 + M*)``.

    ``s = input_size`` (default 65 voxels); ``channels``: output channels of the six blocks (even blocks: kernel
    ``large_kernel``, stride 1; odd blocks: kernel 3, stride 2; all valid convolutions + batch norm + ReLU);
    ``hidden``: width of the first fully connected layer. The flatten order is ``(C, z, y, x)`` of the last map.
    """

    def __init__(
        self,
        in_channels: int = 2,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        large_kernel: int = 7,
        hidden: int = 64,
        input_size: int = 65,
    ) -> None:
        super().__init__()
        self.channels = _check_channels(in_channels, channels, hidden)
        self.sizes = dm2gal_sizes(input_size, large_kernel, len(self.channels))
        self.in_channels, self.large_kernel, self.hidden, self.input_size = (
            in_channels,
            large_kernel,
            hidden,
            input_size,
        )
        blocks, c_in = [], in_channels
        for i, c_out in enumerate(self.channels):
            blocks.append(_block(c_in, c_out, *_block_kernel_stride(i, large_kernel)))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.final_size = self.sizes[-1]
        self.fc1 = nn.Linear(c_in * self.final_size**3, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    @property
    def receptive_field(self) -> int:
        """Side (voxels) of the input region that determines one output: the whole crop."""
        return self.input_size

    @property
    def halo(self) -> int:
        """Voxels of context on each side of the central voxel."""
        return self.input_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C_in, s, s, s)`` -> ``(B,)`` predicted ``log10(1 + M*)`` of each crop's central voxel."""
        expected = (self.in_channels, self.input_size, self.input_size, self.input_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Dm2Gal expects input of shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
        h = self.blocks(x).flatten(1)
        return self.fc2(torch.relu(self.fc1(h))).squeeze(-1)


class _DilatedBody(nn.Module):
    """The dilated trunk of :class:`Dm2GalDilated`.

    Blocks: kernels ``large_kernel, 3, large_kernel, 3, ...`` all stride 1, dilations ``1, 1, 2, 2, 4, 4, ...``
    (``2 ** (i // 2)`` for block ``i``), each + BatchNorm3d + ReLU; then the "FC as convolution" stage: kernel
    ``f`` (the per-voxel network's final map side) with dilation ``2 ** (number of stride-2 blocks)`` to
    ``hidden`` channels, + ReLU. Valid convolutions: ``(B, C_in, S, S, S)`` -> ``(B, hidden, S - 2 halo, ...)``.
    """

    def __init__(
        self, in_channels: int, channels: Sequence[int], large_kernel: int, hidden: int, receptive_field: int
    ) -> None:
        super().__init__()
        self.channels = _check_channels(in_channels, channels, hidden)
        sizes = dm2gal_sizes(receptive_field, large_kernel, len(self.channels))
        self.in_channels, self.large_kernel, self.hidden = in_channels, large_kernel, hidden
        self._receptive_field = int(receptive_field)
        blocks, c_in = [], in_channels
        for i, c_out in enumerate(self.channels):
            kernel, _ = _block_kernel_stride(i, large_kernel)
            blocks.append(_block(c_in, c_out, kernel, dilation=2 ** (i // 2)))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.final_size = sizes[-1]
        self.stage = nn.Conv3d(c_in, hidden, self.final_size, dilation=2 ** (len(self.channels) // 2))

    @property
    def receptive_field(self) -> int:
        """Side (voxels) of the input region that determines one output voxel (65 by default)."""
        return self._receptive_field

    @property
    def halo(self) -> int:
        """Input voxels of context needed on each side of the output region (32 by default)."""
        return self._receptive_field // 2

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C_in, S1, S2, S3)`` (each ``S >= receptive_field``) -> ``(B, hidden, S1 - 2 halo, ...)``."""
        if x.ndim != 5 or x.shape[1] != self.in_channels or min(x.shape[2:]) < self._receptive_field:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (B, {self.in_channels}, S, S, S) with "
                f"S >= {self._receptive_field} (output side S - {2 * self.halo}), got {tuple(x.shape)}"
            )
        return torch.relu(self.stage(self.blocks(x)))


class Dm2GalDilated(_DilatedBody):
    """Fully convolutional, weight-for-weight equivalent of a :class:`Dm2Gal` (made by :func:`dilated_equivalent`).

    ``(B, C_in, s + 2 halo, ...)`` -> ``(B, 1, s, s, s)`` ``log10(1 + M*)``. Inference only: batch norm always
    runs on its running statistics (``train()`` keeps every submodule in eval mode) and parameters are frozen.
    """

    out_channels = 1

    def __init__(
        self, in_channels: int, channels: Sequence[int], large_kernel: int, hidden: int, receptive_field: int
    ) -> None:
        super().__init__(in_channels, channels, large_kernel, hidden, receptive_field)
        self.out = nn.Conv3d(hidden, 1, 1)

    def train(self, mode: bool = True) -> Dm2GalDilated:
        """Stays in eval mode: the per-voxel network's batch statistics cannot be reproduced on whole tiles."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C_in, s + 2 halo, ...)`` -> ``(B, 1, s, s, s)``."""
        return self.out(self.features(x))


def dilated_equivalent(net: Dm2Gal) -> Dm2GalDilated:
    """A :class:`Dm2GalDilated` holding a copy of ``net``'s weights and batch-norm statistics (eval mode).

    Its output at voxel ``v`` of a ``(s + 2 halo)³`` input equals ``net`` (in eval mode) on the crop
    ``input[v : v + input_size]`` to float rounding. The first FC weight ``(hidden, C f³)`` is reshaped to a
    ``(hidden, C, f, f, f)`` kernel: ``flatten`` of ``(B, C, z, y, x)`` is C-ordered, as a Conv3d kernel is.
    """
    if not isinstance(net, Dm2Gal):
        raise TypeError(f"dilated_equivalent needs a Dm2Gal, got {type(net).__name__}")
    param = next(net.parameters())
    out = Dm2GalDilated(net.in_channels, net.channels, net.large_kernel, net.hidden, net.input_size)
    out = out.to(device=param.device, dtype=param.dtype)
    with torch.no_grad():
        for src, dst in zip(net.blocks, out.blocks, strict=True):
            dst[0].weight.copy_(src[0].weight)
            dst[1].load_state_dict(src[1].state_dict())
            dst[1].eps = src[1].eps
        f, c = net.final_size, net.channels[-1]
        out.stage.weight.copy_(net.fc1.weight.reshape(net.hidden, c, f, f, f))
        out.stage.bias.copy_(net.fc1.bias)
        out.out.weight.copy_(net.fc2.weight.reshape(1, net.hidden, 1, 1, 1))
        out.out.bias.copy_(net.fc2.bias)
    out.requires_grad_(False)
    return out.eval()


class Dm2GalFCN(nn.Module):
    """The fully convolutional dm2gal successor (default): every voxel of a crop in one pass.

    ``x (B, C_in, t + 2 halo, ...)`` (``log10(1 + M)`` of DM and (sub)halo mass, Msun/h; ``t`` a multiple of
    ``pool``) -> ``(B, 1 + 3 K, t, t, t)``, ``K = components``: channel :attr:`OCCUPANCY` is the logit that the voxel
    hosts a galaxy above the stellar-mass threshold; the next ``3 K`` are a mixture of ``K`` Gaussians for its
    ``y = log10(1 + M*)`` (Msun/h): ``K`` weight logits, ``K`` means, ``K`` natural logs of the standard deviations
    (:meth:`mixture`; trained by its likelihood). A voxel next to a halo's centre may hold its central galaxy or
    only a satellite two decades lighter: one Gaussian spreads over both and its mean mass overshoots the total.

    Two paths, concatenated per voxel before a 1×1×1 hidden layer and the heads:

    * **context** — the dm2gal receptive field at a quarter of its cost: the inputs averaged over ``pool``³ cells,
      ``context_layers`` 3³ convolutions with dilations 1, 2, 4, ... (``context`` channels) on that coarse grid, and
      the result copied back to the ``pool``³ voxels of each cell. A voxel sees the inputs within
      ``halo - 1 = pool · 2^context_layers - 1`` voxels (31 by default: a 63³ window inside dm2gal's 65³ crop).
      dm2gal computes its six large-kernel layers at full resolution — 10⁵ times the work per voxel — to learn
      what is mostly the halo mass and environment on scales above a voxel.
    * **local** — ``local_layers`` 3³ convolutions at full resolution (``local`` channels): which voxel of a halo's
      cloud holds the galaxy, seen directly.

    With ``linear=1`` a 1×1×1 linear map of the local path's input features (the voxel's log masses, the logs of its
    3³ sums, its distance below the 3³ maximum), standardised, is added to the heads' output: stellar mass and
    satellite numbers grow as power laws of the halo mass at the top of the mass function, where the ReLU layers
    level off. In the runs of docs/paint.md it did not move the fit of the heaviest haloes beyond the run-to-run
    spread, so it is an option (default 0).
    With ``hinges=1`` (the default) the voxel's log masses and their 3³ sums (every channel) enter the heads also
    through hinge features max(0, y − knot) at :data:`HINGE_KNOTS`, mapped linearly (zero at the start): a
    piecewise-linear function of the log mass, whose weights see only the voxels above their knot — the few dozen
    haloes above 10^14 of a training suite — and which goes on straight past the heaviest training halo, where the
    ReLU layers, fitted mostly to light haloes, level off.

    Tiles stitch exactly when their corners are multiples of ``pool`` (:func:`~cosmoseg.paint.tiling.predict_tiled`
    checks; ``halo`` is one): the coarse cells are then the same in every tile. Batch norm, not GroupNorm: in eval
    mode a voxel's output does not depend on the tile that contains it.
    """

    OCCUPANCY = 0

    def __init__(
        self,
        in_channels: int = 2,
        local: int = 16,
        local_layers: int = 3,
        context: int = 16,
        context_layers: int = 3,
        pool: int = 4,
        hidden: int = 32,
        components: int = 2,
        linear: int = 0,
        hinges: int = 1,
    ) -> None:
        super().__init__()
        sizes = {
            "in_channels": in_channels, "local": local, "local_layers": local_layers, "context": context,
            "context_layers": context_layers, "pool": pool, "hidden": hidden, "components": components,
        }  # fmt: skip
        if int(linear) not in (0, 1):
            raise ValueError(f"Dm2GalFCN linear must be 0 or 1, got {linear}")
        if int(hinges) not in (0, 1):
            raise ValueError(f"Dm2GalFCN hinges must be 0 or 1, got {hinges}")
        bad = [f"{name}={value}" for name, value in sizes.items() if int(value) < 1]
        if bad:
            raise ValueError(f"Dm2GalFCN sizes must be positive integers, got {', '.join(bad)}")
        self.in_channels, self.local, self.local_layers = int(in_channels), int(local), int(local_layers)
        self.context, self.context_layers, self.pool, self.hidden = int(context), int(context_layers), int(pool), hidden
        self.components = int(components)
        self.out_channels = 1 + 3 * self.components
        self.local_path = nn.Sequential(
            *(_block(3 * in_channels if i == 0 else local, local, 3) for i in range(local_layers))
        )
        self.context_path = nn.Sequential(
            *(_block(2 * in_channels if i == 0 else context, context, 3, dilation=2**i) for i in range(context_layers))
        )
        self.mix = _block(local + context, hidden, 1)
        self.head = nn.Conv3d(hidden, self.out_channels, 1)
        self.linear = int(linear)
        # a linear map of the local log features straight to the heads, starting at zero (see the class docstring)
        # (standardised by batch norm without affine terms: raw log masses of ~13 would make its steps 13× larger
        # than any other layer's; in eval mode the norm is a fixed affine map, so the path stays linear)
        self.skip: nn.Sequential | None = None
        if self.linear:
            self.skip = nn.Sequential(
                nn.BatchNorm3d(3 * in_channels, affine=False), nn.Conv3d(3 * in_channels, self.out_channels, 1)
            )
            nn.init.zeros_(self.skip[1].weight)
            nn.init.zeros_(self.skip[1].bias)
        # hinge features max(0, y - knot) of the local log masses (voxel and 3³ sum, every channel) mapped linearly
        # onto the heads, starting at zero: a piecewise-linear function of the log halo mass that bends where the
        # stellar-to-halo mass relation bends, and goes on straight past the last knot (see the class docstring).
        # Not standardised: a feature that is non-zero at a few dozen voxels would be scaled up by ~10³; in dex
        # they are O(1) already. Its own weights, so Adam moves them at the learning rate however rare the voxels.
        self.hinges = int(hinges)
        self.hinge_map: nn.Conv3d | None = None
        if self.hinges:
            self.register_buffer("hinge_knots", torch.tensor(HINGE_KNOTS))
            self.hinge_map = nn.Conv3d(2 * in_channels * len(HINGE_KNOTS), self.out_channels, 1)
            nn.init.zeros_(self.hinge_map.weight)
            nn.init.zeros_(self.hinge_map.bias)
        # ln(w) after training with positives weighted by w: logit − ln(w) is the calibrated log-odds (see
        # ``occupied``); stored with the weights so a model file paints as it was selected
        self.register_buffer("logit_threshold", torch.zeros(()))
        # log10 factor on every component's mass, fitted after training so that the painted training boxes hold
        # their true total stellar mass (``paint.training.calibrate_total_mass``)
        self.register_buffer("log_mass_offset", torch.zeros(()))

    def arch(self) -> dict[str, int]:
        """The constructor arguments that rebuild this network."""
        names = (
            "in_channels", "local", "local_layers", "context", "context_layers", "pool", "hidden", "components",
            "linear", "hinges",
        )  # fmt: skip
        return {name: int(getattr(self, name)) for name in names}

    @property
    def halo(self) -> int:
        """Input voxels of context on each side of the output region (32 by default; a multiple of ``pool``)."""
        return self.pool * 2**self.context_layers

    @property
    def stride(self) -> int:
        """Tile corners and sides must be multiples of this (the coarse cells)."""
        return self.pool

    @property
    def receptive_field(self) -> int:
        """Side of the input window one output voxel depends on (63 by default)."""
        return 2 * self.halo - 1

    def occupied(self, logits: torch.Tensor) -> torch.Tensor:
        """Bool mask of the occupied voxels of a whole box from its occupancy logits (any shape).

        The calibrated probability of each voxel is q = sigmoid(logit − ``logit_threshold``); the box gets
        K = round(Σ q) galaxies, in the K voxels of highest q. Thresholding q at 1/2 would leave out every galaxy
        whose voxel the network is unsure of (a halo's mass spreads over several voxels), and drawing Bernoulli(q)
        would place them at random; the top-K keeps the expected number and the most likely places.
        """
        q = torch.sigmoid(logits.float() - self.logit_threshold).flatten()
        k = round(float(q.sum()))
        mask = torch.zeros_like(q, dtype=torch.bool)
        if k > 0:
            mask[torch.topk(q, min(k, q.numel())).indices] = True
        return mask.view(logits.shape)

    def mixture(self, out: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log weights, means, log σ)`` of the mass mixture in ``out`` (channels along ``dim``), each with the
        ``K`` components along ``dim``; weights normalised, means shifted by ``log_mass_offset``, ln σ bounded to
        [−7, ln 3] (σ ≤ 3 dex)."""
        k = self.components
        log_w = torch.log_softmax(out.narrow(dim, 1, k), dim)
        mean = out.narrow(dim, 1 + k, k) + self.log_mass_offset.to(out.dtype)
        return log_w, mean, out.narrow(dim, 1 + 2 * k, k).clamp(-7.0, math.log(3.0))

    def mass_nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood (M,) of ``target`` (M,) ``log10(1 + M*)`` under the mixtures of ``out`` (M, C)
        (channels last; the constant ln √(2π) dropped)."""
        log_w, mean, log_sigma = self.mixture(out, dim=-1)
        z = (target[:, None] - mean) * torch.exp(-log_sigma)
        return -torch.logsumexp(log_w - log_sigma - 0.5 * z**2, dim=-1)

    def mean_log_mstar(self, out: torch.Tensor) -> torch.Tensor:
        """log10 of the conditional mean stellar mass, ``log10 Σ_k w_k 10^(μ_k + ln10 σ_k² / 2)``, per voxel of
        ``out`` (C, ...) (float64)."""
        log_w, mean, log_sigma = (t.double() for t in self.mixture(out))
        ln10 = math.log(10.0)
        return torch.logsumexp(log_w + ln10 * mean + (ln10 * log_sigma.exp()) ** 2 / 2, dim=0) / ln10

    def paint(
        self, out: torch.Tensor, generator: torch.Generator | None = None, *, occupied: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The painted ``log10(1 + M*)`` (n, n, n) of a whole box from its output ``out`` (C, n, n, n): 0 outside
        the :meth:`occupied` voxels; inside, a draw from the predicted mixture when a ``generator`` is given (the
        scatter of the stellar masses at fixed inputs, so the PDF keeps its width), else the log of the conditional
        mean mass (:meth:`mean_log_mstar`: keeps the total mass, not the scatter). ``occupied``: the
        :meth:`occupied` mask of ``out`` when the caller already has it."""
        if occupied is None:
            occupied = self.occupied(out[self.OCCUPANCY])
        if generator is None:
            log_mstar = self.mean_log_mstar(out)
        else:
            log_w, mean, log_sigma = (t.double() for t in self.mixture(out))
            uniform = torch.rand(log_w.shape, generator=generator, dtype=torch.float64, device=generator.device)
            gumbel = -torch.log(-torch.log(uniform.clamp(1e-300, 1.0)))  # Gumbel-max picks component k w.p. w_k
            pick = (log_w + gumbel.to(log_w.device)).argmax(dim=0, keepdim=True)
            noise = torch.randn(mean.shape[1:], generator=generator, dtype=torch.float64, device=generator.device)
            log_mstar = (mean.gather(0, pick) + log_sigma.exp().gather(0, pick) * noise.to(mean.device))[0]
        # bounds for an untrained or extrapolating network: 0 ≤ log10(1 + M*) ≤ 13 (no voxel holds more)
        log_mstar = log_mstar.nan_to_num(0.0).clamp(0.0, MAX_LOG_MSTAR)
        return torch.where(occupied, log_mstar, torch.zeros_like(log_mstar)).to(out.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C_in, t + 2 halo, ...)`` -> ``(B, 1 + 3 K, t, t, t)``: occupancy logits, then the mass mixture
        (:meth:`mixture`)."""
        halo, pool = self.halo, self.pool
        sides = tuple(x.shape[2:])
        if (x.ndim != 5 or x.shape[1] != self.in_channels or min(sides) <= 2 * halo
                or any((s - 2 * halo) % pool for s in sides)):  # fmt: skip
            raise ValueError(
                f"Dm2GalFCN expects input of shape (B, {self.in_channels}, S, S, S) with S = t + {2 * halo} and t a "
                f"positive multiple of {pool} (output side t), got {tuple(x.shape)}"
            )
        # Masses summed in linear space beside the log fields: CIC splits a halo's mass over 2³ voxels, and a sum
        # of 10^x is what ReLU layers on log inputs approximate worst.
        mass = from_log_mass(x).clamp_min(0.0)
        edge = halo - self.local_layers - 1
        near = F.avg_pool3d(mass[..., edge:-edge, edge:-edge, edge:-edge], 3, stride=1) * 27
        # and how far each voxel is below the largest of its 3³ neighbourhood: 0 at the voxel of a halo's cloud that
        # holds its centre (the largest CIC share), which is where the central galaxy is
        peak = x[..., edge:-edge, edge:-edge, edge:-edge]
        inner = x[..., edge + 1 : -edge - 1, edge + 1 : -edge - 1, edge + 1 : -edge - 1]
        peak = inner - F.max_pool3d(peak, 3, stride=1)
        features = torch.cat([inner, to_log_mass(near), peak], 1)
        local = self.local_path(features)
        coarse = torch.cat([F.avg_pool3d(x, pool), to_log_mass(F.avg_pool3d(mass, pool) * pool**3)], 1)
        coarse = self.context_path(coarse)[..., 1:-1, 1:-1, 1:-1]
        for dim in (2, 3, 4):
            coarse = coarse.repeat_interleave(pool, dim=dim)
        out = self.head(self.mix(torch.cat([local, coarse], dim=1)))
        c = self.local_layers  # the unpadded 3³ layers of the local path trim one voxel per side each
        if self.skip is not None:
            out = out + self.skip(features[..., c:-c, c:-c, c:-c])
        if self.hinge_map is not None:
            logs = features[:, : 2 * self.in_channels, c:-c, c:-c, c:-c]  # the voxel's log masses and its 3³ sums
            knots = self.hinge_knots.to(logs.dtype).view(1, 1, -1, 1, 1, 1)
            ramps = F.relu(logs.unsqueeze(2) - knots).flatten(1, 2)
            out = out + self.hinge_map(ramps)
        return out
