"""dm2gal networks (cosmoseg.paint.network): shapes, geometry checks, the exact dilated equivalent, the successor's
receptive field, mixture and paths."""

from __future__ import annotations

import math

import pytest
import torch

from cosmoseg.paint.fields import from_log_mass
from cosmoseg.paint.network import (
    HINGE_KNOTS,
    Dm2Gal,
    Dm2GalDilated,
    Dm2GalFCN,
    dilated_equivalent,
    dm2gal_sizes,
    valid_input_sizes,
)
from cosmoseg.paint.tiling import predict_tiled, predict_voxels

from .helpers import FCN_SMALL, SMALL, SMALL_SIZE, random_fields, small_net


def test_geometry_reduces_cleanly() -> None:
    assert dm2gal_sizes(65, 7) == (65, 59, 29, 23, 11, 5, 2)
    assert dm2gal_sizes(59, 5) == (59, 55, 27, 23, 11, 7, 3)
    assert 65 in valid_input_sizes(7) and 65 not in valid_input_sizes(5)
    with pytest.raises(ValueError, match=r"does not reduce cleanly.*block 4.*side 26.*\[43, 51, 59, 67"):
        Dm2Gal(large_kernel=5, input_size=65)
    with pytest.raises(ValueError, match="odd"):
        dm2gal_sizes(64, 7)
    with pytest.raises(ValueError, match="large_kernel"):
        Dm2Gal(large_kernel=4)


def test_shapes_and_wrong_inputs() -> None:
    net = small_net()
    assert net(torch.zeros(3, 2, SMALL_SIZE, SMALL_SIZE, SMALL_SIZE)).shape == (3,)
    with pytest.raises(ValueError, match=r"shape \(B, 2, 37, 37, 37\)"):
        net(torch.zeros(1, 2, 39, 39, 39))
    with pytest.raises(ValueError, match=r"shape \(B, 2, 37, 37, 37\)"):
        net(torch.zeros(1, 3, 37, 37, 37))
    fcn = Dm2GalFCN(**FCN_SMALL)
    assert (fcn.halo, fcn.receptive_field, fcn.stride) == (8, 15, 2)
    assert fcn(torch.zeros(2, 2, 20, 20, 20)).shape == (2, 7, 4, 4, 4)
    for side in (16, 21):  # no output voxel; an output side that is not a multiple of the pool
        with pytest.raises(ValueError, match=r"S = t \+ 16 and t a positive multiple of 2"):
            fcn(torch.zeros(1, 2, side, side, side))
    default = Dm2GalFCN()
    assert (default.halo, default.receptive_field, default.stride, default.out_channels) == (32, 63, 4, 7)
    assert [b[0].dilation[0] for b in default.context_path] == [1, 2, 4]
    with pytest.raises(ValueError, match="pool=0"):
        Dm2GalFCN(pool=0)


def test_successor_receptive_field_is_its_halo() -> None:
    """A change of the input at distance halo - 1 from a voxel (on any side, any phase of the coarse cell) reaches
    it; one at distance halo never does."""
    torch.manual_seed(12)
    fcn = Dm2GalFCN(**FCN_SMALL).eval()
    n, halo = 32, fcn.halo
    fields = random_fields(n, seed=13)
    base = predict_tiled(fcn, fields, tile=n)
    for voxel in (0, 1):  # both phases of a pool-2 cell
        for sign in (1, -1):
            reach = []
            for distance in (halo - 1, halo):
                moved = fields.clone()
                moved[:, (voxel + sign * distance) % n, 5, 5] += 50.0
                reach.append(bool((predict_tiled(fcn, moved, tile=n)[:, voxel, 5, 5] != base[:, voxel, 5, 5]).any()))
            assert reach[1] is False
            # the farthest reachable voxel is halo - 1 on one side of a cell and halo - pool on the other
            assert reach[0] is (sign == 1 if voxel == 0 else sign == -1)


@pytest.mark.parametrize(
    ("kwargs", "n"),
    [({}, 7), ({"channels": SMALL["channels"], "hidden": 4, "large_kernel": 7, "input_size": 65}, 3)],
    ids=["small", "default-geometry"],
)
def test_dilated_equivalent_equals_per_voxel(kwargs: dict, n: int) -> None:
    net = small_net(seed=3, **kwargs)
    dil = dilated_equivalent(net)
    assert isinstance(dil, Dm2GalDilated) and dil.halo == net.input_size // 2
    fields = random_fields(n, seed=4)
    whole = predict_tiled(dil, fields, tile=n)[0]  # (n, n, n), periodic
    voxels = torch.tensor([[0, 0, 0], [n - 1, 0, n - 1], [1, n - 1, 2], [n // 2, n // 2, n // 2]])
    per_voxel = predict_voxels(net, fields, voxels, batch=2)
    torch.testing.assert_close(whole[voxels[:, 0], voxels[:, 1], voxels[:, 2]], per_voxel, atol=1e-5, rtol=1e-5)
    dil.train()  # stays in eval mode: the per-voxel network's batch statistics cannot be reproduced
    assert not any(m.training for m in dil.modules())


def test_dilated_equivalent_on_a_plain_crop() -> None:
    """Non-periodic check: the (s + 2 halo)³ input's output at v equals net on input[v : v + input_size]."""
    net = small_net(seed=5)
    dil = dilated_equivalent(net)
    x = torch.randn(1, 2, SMALL_SIZE + 2, SMALL_SIZE + 2, SMALL_SIZE + 2, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        full = dil(x)[0, 0]
        crops = torch.stack([x[0, :, i : i + SMALL_SIZE, j : j + SMALL_SIZE, k : k + SMALL_SIZE] for i, j, k in
                             [(0, 0, 0), (2, 1, 0), (1, 2, 2)]])  # fmt: skip
        ref = net(crops)
    torch.testing.assert_close(torch.stack([full[0, 0, 0], full[2, 1, 0], full[1, 2, 2]]), ref, atol=1e-5, rtol=1e-5)


def _mixture_output(model: Dm2GalFCN, n: int, weights: list[float], means: list[float], sigmas: list[float]):
    """An output volume (1 + 3K, n, n, n): every voxel occupied, the same mixture everywhere."""
    values = [20.0, *torch.tensor(weights).log().tolist(), *means, *torch.tensor(sigmas).log().tolist()]
    return torch.tensor(values, dtype=torch.float64)[:, None, None, None].expand(-1, n, n, n).clone()


def test_mixture_likelihood_mean_and_draws() -> None:
    one = Dm2GalFCN(**FCN_SMALL, components=1)
    # occupancy, weight logit, mean, ln sigma
    out = torch.tensor([[0.0, 0.0, 10.0, math.log(0.3)]], dtype=torch.float64)
    expected = 0.5 * ((10.4 - 10.0) / 0.3) ** 2 + math.log(0.3)  # Gaussian NLL without ln sqrt(2 pi)
    assert float(one.mass_nll(out, torch.tensor([10.4], dtype=torch.float64))) == pytest.approx(expected, rel=1e-6)

    two = Dm2GalFCN(**FCN_SMALL, components=2)
    weights, means, sigmas = [0.7, 0.3], [10.5, 8.5], [0.2, 0.3]
    volume = _mixture_output(two, 40, weights, means, sigmas)
    ln10 = math.log(10.0)
    mean_mass = sum(w * 10 ** (m + ln10 * s**2 / 2) for w, m, s in zip(weights, means, sigmas, strict=True))
    assert float(two.mean_log_mstar(volume)[0, 0, 0]) == pytest.approx(math.log10(mean_mass), abs=1e-7)
    assert float(two.paint(volume)[3, 2, 1]) == pytest.approx(math.log10(mean_mass), abs=1e-6)  # log10(1+M) ~ log10 M
    draws = two.paint(volume, torch.Generator().manual_seed(0)).flatten()  # 64 000 draws
    heavy = draws > 9.6  # 4.5 and 3.7 sigma from the means: each draw tells which component it came from
    assert float(heavy.double().mean()) == pytest.approx(0.7, abs=0.01)
    assert float(draws[heavy].mean()) == pytest.approx(10.5, abs=0.01)
    assert float(draws[~heavy].std()) == pytest.approx(0.3, abs=0.01)
    assert float(from_log_mass(draws.double()).mean()) == pytest.approx(mean_mass, rel=0.03)


def test_linear_path_adds_the_voxels_own_log_features() -> None:
    """The linear path starts at zero (the network without it) and, when set, adds a linear map of the output
    voxel's own local features: here its log halo mass (feature 1) to the first mixture mean, voxel by voxel."""
    torch.manual_seed(14)
    with_path = Dm2GalFCN(**FCN_SMALL, linear=1).eval()
    without = Dm2GalFCN(**FCN_SMALL).eval()  # linear=0, the default
    without.load_state_dict({k: v for k, v in with_path.state_dict().items() if not k.startswith("skip.")})
    x = random_fields(20, seed=15).abs()[None] * 3
    torch.testing.assert_close(with_path(x), without(x))
    k = with_path.components
    with torch.no_grad():
        with_path.skip[1].weight[1 + k, 1] = 1.0  # after the norm: (x − running mean) / running σ = x at init
    halo = with_path.halo
    own_log_halo = x[0, 1, halo:-halo, halo:-halo, halo:-halo]
    torch.testing.assert_close(with_path(x)[0, 1 + k] - without(x)[0, 1 + k], own_log_halo, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="linear must be 0 or 1"):
        Dm2GalFCN(linear=2)


def test_hinges_add_a_piecewise_linear_function_of_the_voxels_log_masses() -> None:
    """The hinge path starts at zero and, when set, adds Σ_knots w max(0, y − knot) of the output voxel's own log
    halo mass y to the first mixture mean: 0 below the first knot, straight past the last."""
    torch.manual_seed(16)
    with_hinges = Dm2GalFCN(**FCN_SMALL).eval()  # hinges=1, the default
    without = Dm2GalFCN(**FCN_SMALL, hinges=0).eval()
    without.load_state_dict({k: v for k, v in with_hinges.state_dict().items() if not k.startswith("hinge_")})
    x = random_fields(20, seed=17).abs()[None] * 6 + 9  # log masses 9 to ~25: below, between and past every knot
    torch.testing.assert_close(with_hinges(x), without(x))
    k, knots = with_hinges.components, list(HINGE_KNOTS)
    halo_feature = 1  # features: log dm, log halo (the voxel), then their 3³ sums, each at every knot
    with torch.no_grad():
        with_hinges.hinge_map.weight[1 + k, halo_feature * len(knots) + 0] = 0.5  # first knot, slope 0.5
        with_hinges.hinge_map.weight[1 + k, halo_feature * len(knots) + len(knots) - 1] = -0.2  # last: 0.3 past it
    halo = with_hinges.halo
    y = x[0, 1, halo:-halo, halo:-halo, halo:-halo]
    expected = 0.5 * (y - knots[0]).clamp_min(0) - 0.2 * (y - knots[-1]).clamp_min(0)
    torch.testing.assert_close(with_hinges(x)[0, 1 + k] - without(x)[0, 1 + k], expected, atol=1e-5, rtol=1e-5)
    assert bool((y < knots[0]).any()) and bool((y > knots[-1]).any())
    with pytest.raises(ValueError, match="hinges must be 0 or 1"):
        Dm2GalFCN(hinges=2)
