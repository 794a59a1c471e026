"""The FFT bispectrum estimator against brute-force sums, Gaussian statistics and an analytic bispectrum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cosmoseg.data import Cosmology
from cosmoseg.measure import power_spectrum
from cosmoseg.measure.bispectrum import bispectrum, shell_range
from cosmoseg.mesh.fourier import rfft_k_magnitude
from cosmoseg.sim import gaussian_random_field

# grids of 12^3-64^3 transform fastest on one thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def brute_force(
    field: np.ndarray, length: float, k1: float, k2: float, thetas: np.ndarray, dk: float
) -> tuple[np.ndarray, np.ndarray]:
    """(n_triangles, B) by looping over every mode pair of the full complex grid: k3 = -(k1 + k2) mod n."""
    n = field.shape[0]
    kf = 2 * math.pi / length
    modes = np.fft.fftn(field)
    freq = np.rint(np.fft.fftfreq(n, 1 / n)).astype(int)
    q = freq[:, None, None] ** 2 + freq[None, :, None] ** 2 + freq[None, None, :] ** 2
    counts, values = [], []
    for theta in thetas:
        k3 = math.sqrt(max(k1**2 + k2**2 + 2 * k1 * k2 * math.cos(theta), 0.0))
        shells = [shell_range(k, dk, kf) for k in (k1, k2, k3)]
        a, b = (np.argwhere((q >= s[0]) & (q < s[1])) for s in shells[:2])
        c = (-(a[:, None, :] + b[None, :, :])) % n
        q3 = q[c[..., 0], c[..., 1], c[..., 2]]
        closed = (q3 >= shells[2][0]) & (q3 < shells[2][1])
        triple = (
            modes[a[:, 0], a[:, 1], a[:, 2]][:, None]
            * modes[b[:, 0], b[:, 1], b[:, 2]][None, :]
            * modes[c[..., 0], c[..., 1], c[..., 2]]
        )
        counts.append(int(closed.sum()))
        values.append(triple[closed].sum().real * length**6 / n**9 / max(counts[-1], 1))
    return np.array(counts), np.array(values)


@pytest.mark.parametrize("method", ["fourier", "direct"])
@pytest.mark.parametrize(("k1", "k2", "dk"), [(2.0, 3.0, 1.0), (1.3, 1.3, 2.0), (4.6, 4.0, 1.0)])
def test_counts_and_values_equal_a_brute_force_sum_over_mode_triplets(
    method: str, k1: float, k2: float, dk: float
) -> None:
    """12^3, all angles; (4.6, 4.0) k_f closes triangles modulo n (k1 + k2 + k3 > 2 k_Ny), counted by both."""
    n, length = 12, 30.0
    kf = 2 * math.pi / length
    field = torch.randn((n, n, n), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    thetas = np.linspace(0, math.pi, 7)
    result = bispectrum(field, length, k1=k1 * kf, k2=k2 * kf, thetas=thetas, dk=dk * kf, method=method)
    counts, values = brute_force(field.numpy(), length, k1 * kf, k2 * kf, thetas, dk * kf)
    kept = counts > 0
    assert result.n_triangles.numpy() == pytest.approx(counts[kept], abs=0)
    np.testing.assert_allclose(result.bispectrum.numpy(), values[kept], rtol=1e-10, atol=1e-10 * abs(values).max())
    np.testing.assert_allclose(result.theta.numpy(), thetas[kept])


def test_the_reduced_grid_gives_the_same_numbers() -> None:
    n, length = 32, 100.0
    kf = 2 * math.pi / length
    field = torch.randn((n, n, n), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kwargs = {"k1": [3 * kf, 2.2 * kf], "k2": [4 * kf, 5 * kf], "thetas": np.linspace(0, math.pi, 5), "dk": 1.5 * kf}
    small = bispectrum(field, length, **kwargs)
    full = bispectrum(field, length, **kwargs, reduce_grid=False, method="direct")
    assert small.grid < n and full.grid == n
    assert torch.equal(small.n_triangles, full.n_triangles)
    torch.testing.assert_close(small.bispectrum, full.bispectrum, rtol=1e-12, atol=0)
    torch.testing.assert_close(small.power3, full.power3, rtol=1e-12, atol=0)


def test_each_shell_is_transformed_once() -> None:
    n, length = 32, 100.0
    kf = 2 * math.pi / length
    field = torch.randn((n, n, n), generator=torch.Generator().manual_seed(2))
    k1, k2 = [3 * kf, 3 * kf, 5 * kf], [5 * kf, 6 * kf, 6 * kf]
    thetas = np.linspace(0.1, 3.0, 6)
    fourier = bispectrum(field, length, k1=k1, k2=k2, thetas=thetas)
    assert fourier.n_transforms == 3  # the shells 3, 5, 6 k_f; every k3 comes from one FFT per pair
    direct = bispectrum(field, length, k1=k1, k2=k2, thetas=thetas, method="direct")
    shells = {shell_range(k, kf, kf) for k in [*k1, *k2, *(float(k) for k in direct.k3)]}
    assert direct.n_transforms == len(shells)
    torch.testing.assert_close(fourier.bispectrum, direct.bispectrum, rtol=1e-4, atol=1e-6 * float(direct.error.max()))


def test_shell_power_is_the_binned_power_spectrum() -> None:
    """Shells of width k_f centred on j k_f are the bins of power_spectrum: same P, same convention."""
    n, length = 32, 100.0
    kf = 2 * math.pi / length
    field = torch.randn((n, n, n), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    result = bispectrum(field, length, k1=[2 * kf, 5 * kf], k2=[7 * kf, 9 * kf], thetas=[math.pi / 2])
    spectrum = power_spectrum(field, length)
    for k, power in [(result.k1, result.power1), (result.k2, result.power2)]:
        index = torch.round(k / kf).long() - 1
        torch.testing.assert_close(power, spectrum.power[index], rtol=1e-12, atol=0)


def test_a_gaussian_field_has_a_bispectrum_consistent_with_zero() -> None:
    """B / σ_Gauss over 38 configurations and 24 seeds: mean 0, standard deviation 1 (the error model)."""
    n, length = 32, 300.0
    kf = 2 * math.pi / length
    cosmology = Cosmology(power_backend="eisenstein-hu")
    k1, k2 = [4 * kf, 4 * kf, 3 * kf, 6 * kf, 5 * kf], [4 * kf, 6 * kf, 8 * kf, 6 * kf, 9 * kf]
    z = []
    for seed in range(24):
        gen = torch.Generator().manual_seed(seed)
        field = gaussian_random_field(cosmology, n=n, length=length, generator=gen, dtype=torch.float64)
        result = bispectrum(field, length, k1=k1, k2=k2, thetas=np.linspace(0, math.pi, 8))
        z.append((result.bispectrum / result.error).numpy())
    z = np.array(z)  # (seeds, configurations); configurations share modes, seeds are independent
    per_seed = z.mean(axis=1)
    assert abs(per_seed.mean()) < 4 * per_seed.std(ddof=1) / math.sqrt(len(per_seed))
    assert 0.85 < z.std() < 1.2
    assert np.abs(z).max() < 6


def test_a_local_quadratic_field_has_the_tree_level_bispectrum() -> None:
    """δ = g + f (g^2 - <g^2>): B = 2 f [P_g(k1) P_g(k2) + 2 perms] (exact at order f; the f^3 term is ~1%).

    g has a bump-shaped P_g, so most of its variance sits in the measured shells (high signal to noise).
    The prediction is averaged over the same mode triangles (NumPy, full complex FFTs): at the bin centres it
    would be off by up to 20% here, P_g varying by that much across a shell.
    """
    n, length = 64, 200.0
    kf = 2 * math.pi / length
    k0, width, dk = 16.0, 2.0, 2 * kf

    def p_g(k: torch.Tensor) -> torch.Tensor:
        return 1e3 * torch.exp(-0.5 * ((k / kf - k0) / width) ** 2)

    k_grid = rfft_k_magnitude(n, length, dtype=torch.float64)
    amplitude = torch.sqrt(p_g(k_grid) * n**3 / length**3)
    amplitude[0, 0, 0] = 0

    def g_field(seed: int) -> torch.Tensor:
        noise = torch.randn((n, n, n), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        return torch.fft.irfftn(torch.fft.rfftn(noise) * amplitude, s=(n, n, n))

    pairs = [(k0 * kf, k0 * kf), ((k0 - 2) * kf, (k0 + 1) * kf), ((k0 + 2) * kf, (k0 + 2) * kf)]
    thetas = np.linspace(0.3, math.pi - 0.3, 5)
    f_nl = 0.1 / float(g_field(0).std())

    freq = np.fft.fftfreq(n, 1 / n)
    q = freq[:, None, None] ** 2 + freq[None, :, None] ** 2 + freq[None, None, :] ** 2
    power = p_g(torch.from_numpy(np.sqrt(q) * kf)).numpy()
    predicted = []
    for a, b in pairs:
        for theta in thetas:
            c = math.sqrt(a**2 + b**2 + 2 * a * b * math.cos(theta))
            masks = [((q >= s[0]) & (q < s[1])).astype(float) for s in (shell_range(k, dk, kf) for k in (a, b, c))]
            unit = [np.fft.ifftn(mask).real for mask in masks]
            weighted = [np.fft.ifftn(mask * power).real for mask in masks]
            pp = sum(weighted[i] * weighted[j] * unit[3 - i - j] for i, j in ((0, 1), (1, 2), (0, 2))).sum()
            predicted.append(2 * f_nl * pp / (unit[0] * unit[1] * unit[2]).sum())
    predicted = np.array(predicted)

    plain, paired = [], []
    for seed in range(8):
        g = g_field(seed)
        square = g * g - (g * g).mean()
        plus, minus = (
            bispectrum(g + s * f_nl * square, length, k1=[p[0] for p in pairs], k2=[p[1] for p in pairs],
                       thetas=thetas, dk=dk).bispectrum.numpy()
            for s in (1, -1)
        )  # fmt: skip
        plain.append(plus / predicted)
        paired.append((plus - minus) / 2 / predicted)  # the even (Gaussian) part cancels per realisation
    plain, paired = np.array(plain), np.array(paired)
    assert plain.mean() == pytest.approx(1.0, abs=0.05)
    assert paired.mean() == pytest.approx(1.0, abs=0.03)
    assert np.abs(paired.mean(axis=0) - 1).max() < 0.15  # every configuration on its own


def test_equals_pylians() -> None:
    """Pylians' Bk (shells k ± k_f, float32 FFTs, MAS='None') on a non-Gaussian field."""
    bk_library = pytest.importorskip("Pk_library")  # Pylians 0.12 keeps Bk in Pk_library
    n, length = 32, 100.0
    kf = 2 * math.pi / length
    g = torch.randn((n, n, n), generator=torch.Generator().manual_seed(4))
    field = g + 0.3 * (g * g - (g * g).mean())
    thetas = np.linspace(0.2, math.pi - 0.2, 6)
    k1, k2 = 4.3 * kf, 6.2 * kf  # no mode on a shell edge
    ours = bispectrum(field, length, k1=k1, k2=k2, thetas=thetas, dk=2 * kf)
    theirs = bk_library.Bk(field.numpy().astype(np.float32), length, k1, k2, thetas.astype(np.float64), "None", 1)
    np.testing.assert_allclose(ours.bispectrum.numpy(), theirs.B, rtol=1e-3)
    np.testing.assert_allclose(ours.reduced.numpy(), theirs.Q, rtol=1e-3)


def test_bad_inputs() -> None:
    field = torch.zeros((8, 8, 8))
    kf, k_ny = 2 * math.pi / 10.0, math.pi * 8 / 10.0
    with pytest.raises(ValueError, match=r"k1 = .* outside"):
        bispectrum(field, 10.0, k1=1.1 * k_ny, k2=kf, thetas=[0.5])
    with pytest.raises(ValueError, match=r"k2 = .* outside"):
        bispectrum(field, 10.0, k1=kf, k2=0.0, thetas=[0.5])
    with pytest.raises(ValueError, match="cubic"):
        bispectrum(torch.zeros((8, 8, 6)), 10.0, k1=kf, k2=kf, thetas=[0.5])
    with pytest.raises(ValueError, match="pair up"):
        bispectrum(field, 10.0, k1=[kf, 2 * kf], k2=[kf], thetas=[0.5])
    with pytest.raises(ValueError, match=r"\[0, π\]"):
        bispectrum(field, 10.0, k1=kf, k2=kf, thetas=[4.0])
    with pytest.raises(ValueError, match="dk"):
        bispectrum(field, 10.0, k1=kf, k2=kf, thetas=[0.5], dk=-1.0)
    with pytest.raises(ValueError, match="floating"):
        bispectrum(torch.zeros((8, 8, 8), dtype=torch.int64), 10.0, k1=kf, k2=kf, thetas=[0.5])


def test_the_stage_measures_every_pair_at_every_angle() -> None:
    from cosmoseg.measure.stages import BispectrumStage
    from cosmoseg.testing import assert_stage_contract, toy_field

    field = toy_field(torch.Generator().manual_seed(5), n=16)  # 50 Mpc/h: k_f = 0.126, k_Ny = 1.005 h/Mpc
    outputs = assert_stage_contract(
        BispectrumStage, params={"k1": [0.3, 0.4], "k2": [0.5, 0.4], "n_theta": 4}, inputs={"field": field}
    )
    table = outputs["bispectrum"]
    assert len(table) == 7 and table.meta["grid"] <= 16  # k1 = k2, θ = π: k3 = 0 closes no triangle, dropped
    assert float(table["theta"][-1]) < math.pi and float(table["k3"].min()) > 0
    assert {"k1", "k2", "k3", "theta", "bispectrum", "bispectrum_err", "Q", "Q_err", "n_triangles"} <= set(
        table.columns
    )
    direct = bispectrum(field.channel("delta"), 50.0, k1=[0.3, 0.4], k2=[0.5, 0.4], thetas=np.linspace(0, math.pi, 4))
    torch.testing.assert_close(table["bispectrum"], direct.bispectrum)


def test_the_stage_rejects_bad_params() -> None:
    from cosmoseg.measure.stages import BispectrumStage
    from cosmoseg.pipeline.params import parse_params

    _, problems = parse_params(BispectrumStage.Params, {"k2": 0.1}, "measure.bispectrum")
    assert any("missing required param 'k1'" in p for p in problems)
    raw = {"k1": [0.1, -0.2], "k2": 0.1, "thetas": [4.0], "dk": -1.0}
    _, problems = parse_params(BispectrumStage.Params, raw, "measure.bispectrum")
    text = "\n".join(problems)
    assert "param 'k1' must be > 0" in text and "param 'thetas' must be <= 3.14159" in text and "'dk'" in text
    # the rules across fields, once every field is in its bounds
    _, problems = parse_params(BispectrumStage.Params, {"k1": [0.1, 0.2], "k2": 0.1, "n_theta": 0}, "b")
    text = "\n".join(problems)
    assert "same, non-zero number" in text and "param 'n_theta' must be >= 1 (or give 'thetas')" in text
    assert not parse_params(BispectrumStage.Params, {"k1": 0.1, "k2": 0.1, "n_theta": 0, "thetas": [1.0]}, "b")[1]


def test_a_second_call_reuses_the_cached_triangle_counts() -> None:
    """The counts depend only on grid, box and shells: the second call skips the unit fields, same numbers."""
    from cosmoseg.measure.bispectrum import clear_count_cache, count_cache_info

    n, length = 32, 100.0
    kf = 2 * math.pi / length
    field = torch.randn((n, n, n), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    kwargs = {"k1": [3 * kf, 4 * kf], "k2": [3 * kf, 5 * kf], "thetas": np.linspace(0, math.pi, 5)}
    for method in ("fourier", "direct"):
        clear_count_cache()
        first = bispectrum(field, length, **kwargs, method=method)
        info = count_cache_info()
        assert info["hits"] == 0 and info["misses"] == info["size"] == 10
        second = bispectrum(field, length, **kwargs, method=method)
        info = count_cache_info()
        assert info["hits"] == 10 and info["misses"] == 10 and info["size"] == 10
        assert second.n_transforms == first.n_transforms
        for name, value in first.columns().items():
            assert torch.equal(value, second.columns()[name]), name
        # another field on the same grid and shells reuses the counts too, and they are still right
        other = torch.randn((n, n, n), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        cached = bispectrum(other, length, **kwargs, method=method)
        assert count_cache_info()["hits"] == 20
        clear_count_cache()
        fresh = bispectrum(other, length, **kwargs, method=method)
        for name, value in fresh.columns().items():
            assert torch.equal(value, cached.columns()[name]), name
    clear_count_cache()
    assert count_cache_info() == {"hits": 0, "misses": 0, "size": 0, "max_size": count_cache_info()["max_size"]}
