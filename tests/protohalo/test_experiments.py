"""The modified initial conditions of López-Cano et al. §4: periodic, δ shifted by exactly ε, ∇²φ_* = δ_* about q₀."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cosmoseg.data import Box, Field
from cosmoseg.mesh.tidal import tidal_tensor
from cosmoseg.protohalo.experiments import impose_tide, periodic_separation, shift_density

N, L = 16, 32.0


def _fields() -> Field:
    from cosmoseg.sim.ics import linear_potential

    delta = torch.randn(N, N, N, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    delta -= delta.mean()
    return Field(
        values=torch.stack([delta, linear_potential(delta, L)]).float(),
        box=Box(length=L),
        channels=("delta", "phi"),
        units=("", "(Mpc/h)^2"),
    )


def _laplacian(phi: torch.Tensor) -> torch.Tensor:
    """Second-order finite differences, periodic (h = L/N)."""
    h = L / N
    return sum(torch.roll(phi, 1, a) + torch.roll(phi, -1, a) - 2 * phi for a in range(3)) / h**2


def test_separation_is_the_minimal_image_about_the_centre() -> None:
    d = periodic_separation(N, L, (1.0, 31.0, 16.0), dtype=torch.float64)
    assert d.shape == (3, N, N, N)
    assert d[0, 0, 0, 0].item() == pytest.approx(0.0)  # cell centre 1.0
    assert d[1, 0, 0, 0].item() == pytest.approx(2.0)  # 1.0 − 31.0 → +2 across the boundary
    assert d.abs().max().item() <= L / 2 + 1e-9


def test_density_shift_is_exactly_epsilon_and_periodic_with_a_consistent_potential() -> None:
    fields = _fields()
    centre = (3.0, 29.0, 17.0)
    shifted = shift_density(fields, 0.5, centre)
    assert torch.allclose(shifted.channel("delta") - fields.channel("delta"), torch.full((N, N, N), 0.5), atol=1e-6)
    assert "delta shifted by 0.5" in shifted.meta["modified"] and "modified" not in fields.meta
    change = (shifted.channel("phi") - fields.channel("phi")).double()
    d = periodic_separation(N, L, centre, dtype=torch.float64)
    assert torch.allclose(change, 0.5 * (d**2).sum(0) / 6, atol=1e-5)
    # ∇² of the added term is ε wherever the stencil stays within half a box of q₀ (the quadratic is exact there)
    inside = (d.abs() < L / 2 - 1.5 * L / N).all(0)
    assert torch.allclose(_laplacian(change)[inside], torch.full_like(change[inside], 0.5), atol=1e-5)
    # periodic: neighbouring cells, across the box faces too, differ by at most ε/6 |(d + h)² − d²| <= ε/6 (L h + h²);
    # the plain q − q₀ (no minimal image) would jump by about ε L²/6 at a face
    h = L / N
    for axis in range(3):
        step = (change - torch.roll(change, 1, axis)).abs().max().item()
        assert step <= 0.5 / 6 * (L * h + h**2) + 1e-5


def test_tide_is_trace_free_and_leaves_delta() -> None:
    fields = _fields()
    centre = (16.0, 16.0, 16.0)
    tided = impose_tide(fields, 0.5, centre)
    assert torch.equal(tided.channel("delta"), fields.channel("delta"))
    change = (tided.channel("phi") - fields.channel("phi")).double()
    d = periodic_separation(N, L, centre, dtype=torch.float64)
    inside = (d.abs() < L / 2 - 1.5 * L / N).all(0)
    assert torch.allclose(_laplacian(change)[inside], torch.zeros_like(change[inside]), atol=1e-5)
    # the second derivatives are the imposed tensor diag(0, −λ, λ) near q₀
    h = L / N
    c = N // 2
    second = lambda a: (torch.roll(change, 1, a) + torch.roll(change, -1, a) - 2 * change)[c, c, c] / h**2  # noqa: E731
    assert [second(a).item() for a in range(3)] == pytest.approx([0.0, -0.5, 0.5], abs=1e-5)
    with pytest.raises(ValueError, match="'phi'"):
        impose_tide(Field(values=fields.values[:1], box=fields.box, channels=("delta",)), 0.5, centre)


def test_the_fourier_tide_of_a_shifted_box_gains_epsilon_in_its_trace_near_the_centre() -> None:
    fields = _fields()
    shifted = shift_density(fields, 0.3, (16.0, 16.0, 16.0))
    before = tidal_tensor(fields.channel("phi").double(), L)[:3].sum(0)
    after = tidal_tensor(shifted.channel("phi").double(), L)[:3].sum(0)
    # the FFT sees the kink half a box away, so compare the mean trace change over the central octant only
    core = slice(N // 4, 3 * N // 4)
    assert (after - before)[core, core, core].mean().item() == pytest.approx(0.3, abs=0.01)


# ---- the §4 experiments: estimators and toy predictors ------------------------------------------------------------


def _blob_fields(amplitude: float = 2.0, width: float = 3.0, n: int = 16, length: float = 16.0) -> Field:
    """δ = A exp(−r²/2s²) about the box centre (cells of 1 Mpc/h), φ its periodic Poisson solution."""
    from cosmoseg.data import Cosmology
    from cosmoseg.sim.ics import linear_potential

    d = periodic_separation(n, length, (length / 2,) * 3, dtype=torch.float64)
    delta = amplitude * torch.exp(-(d**2).sum(0) / (2 * width**2))
    return Field(
        values=torch.stack([delta, linear_potential(delta, length)]),
        box=Box(length=length, cosmology=Cosmology(power_backend="eisenstein-hu")),
        channels=("delta", "phi"),
        units=("", "(Mpc/h)^2"),
    )


def _threshold_predictor(level: float = 1.0):
    """A deterministic toy "model": the connected regions of δ > level are the haloes (φ ignored)."""
    from scipy import ndimage

    def predict(fields: Field) -> torch.Tensor:
        labels, _ = ndimage.label((fields.channel("delta") > level).numpy())
        return torch.as_tensor(labels, dtype=torch.int64)

    return predict


def test_the_separate_universe_bias_recovers_a_known_response() -> None:
    from cosmoseg.protohalo.experiments import jackknife_bias, separate_universe_bias

    n0 = np.array([1000.0, 400.0, 100.0])
    b = np.array([0.5, 1.0, 2.0])
    eps = 0.1
    bias, error = separate_universe_bias(n0 * (1 - b * eps), n0, n0 * (1 + b * eps), eps)
    assert bias == pytest.approx(b)
    # sqrt(n+ + n- + b² (2ε)² n0) / (2ε n0): first bin sqrt(1050 + 950 + 0.25·0.04·1000)/200
    assert error[0] == pytest.approx(math.sqrt(2010.0) / 200.0)
    assert np.isnan(separate_universe_bias(np.array([1]), np.array([0]), np.array([2]), 0.1)[0][0])
    # the same response in every region: no scatter between the delete-one estimates
    regions = np.stack([n0, 2 * n0, 3 * n0])
    jk, jk_error = jackknife_bias(regions * (1 - b * eps), regions, regions * (1 + b * eps), eps)
    assert jk == pytest.approx(b) and jk_error == pytest.approx(np.zeros(3), abs=1e-12)


def test_the_response_ratio_and_its_poisson_error() -> None:
    from cosmoseg.protohalo.experiments import response_ratio

    ratio, error = response_ratio(np.array([10, 0, 5]), np.array([5, 4, 0]))
    assert ratio[:2] == pytest.approx([2.0, 0.0]) and np.isnan(ratio[2])
    assert error[0] == pytest.approx(2.0 * math.sqrt(1 / 10 + 1 / 5))
    assert error[1] == pytest.approx(1 / 4)  # an empty bin has the error of one count
    assert np.isnan(error[2])


def test_sheth_tormen_bias_at_two_peak_heights() -> None:
    from cosmoseg.protohalo.experiments import sheth_tormen_bias

    # ν = 1: (0.707 − 1)/1.686 + 0.6/(1.686 (1 + 0.707^0.3)) = −0.173784 + 0.187181
    # ν = 2: (2.828 − 1)/1.686 + 0.6/(1.686 (1 + 2.828^0.3)) = 1.084223 + 0.150412
    assert sheth_tormen_bias(np.array([1.0, 2.0])) == pytest.approx([0.013398, 1.234635], abs=2e-6)


def test_the_peak_height_at_the_mass_of_an_8_mpc_sphere_is_delta_c_over_sigma8() -> None:
    from cosmoseg.data import Cosmology
    from cosmoseg.protohalo.experiments import peak_height
    from cosmoseg.protohalo.mass_bins import DELTA_COLLAPSE

    cosmo = Cosmology(power_backend="eisenstein-hu")
    mass = 4 / 3 * math.pi * 8.0**3 * cosmo.mean_matter_density
    assert peak_height(cosmo, np.array([mass]))[0] == pytest.approx(DELTA_COLLAPSE / cosmo.sigma_8, rel=1e-3)


def test_the_sigma8_rescaling_scales_delta_and_phi_exactly() -> None:
    from cosmoseg.protohalo.experiments import scale_amplitude

    fields = _fields()
    extra = Field(
        values=torch.cat([fields.values, fields.values[:1] ** 2]),
        box=fields.box,
        channels=("delta", "phi", "other"),
        units=("", "(Mpc/h)^2", ""),
    )
    scaled = scale_amplitude(extra, 1.25)  # 1.25 is exact in binary: the products are exact
    assert torch.equal(scaled.channel("delta"), fields.channel("delta") * 1.25)
    assert torch.equal(scaled.channel("phi"), fields.channel("phi") * 1.25)
    assert torch.equal(scaled.channel("other"), extra.channel("other"))
    assert scaled.box.cosmology.sigma_8 == pytest.approx(1.25 * fields.box.cosmology.sigma_8)
    with pytest.raises(ValueError, match="positive"):
        scale_amplitude(fields, 0.0)


def test_the_whole_box_shift_quadratic_or_poisson() -> None:
    from cosmoseg.protohalo.experiments import shift_box

    fields = _fields()
    poisson = shift_box(fields, 0.2, "poisson")
    assert torch.allclose(poisson.channel("delta"), fields.channel("delta") + 0.2, atol=1e-6)
    assert torch.equal(poisson.channel("phi"), fields.channel("phi"))
    quadratic = shift_box(fields, 0.2, "quadratic")
    about_centre = shift_density(fields, 0.2, (L / 2, L / 2, L / 2))
    assert torch.equal(quadratic.values, about_centre.values)
    with pytest.raises(ValueError, match="potential"):
        shift_box(fields, 0.2, "linear")  # type: ignore[arg-type]


def test_the_spherical_collapse_mass_of_a_uniform_field() -> None:
    from cosmoseg.protohalo.experiments import spherical_collapse_mass

    n, length = 16, 16.0
    d = periodic_separation(n, length, (8.0, 8.0, 8.0), dtype=torch.float64)
    in_sphere = int(((d**2).sum(0).sqrt() <= length / 2).sum())
    delta = torch.full((n, n, n), 1.5)
    # δ̄(<R) = 1.5 at every R: below δ_c alone, above it with ε = 0.2 (every sphere up to L/2 collapses)
    assert spherical_collapse_mass(delta, (8.0, 8.0, 8.0), length, 2.0, 0.0) == 0.0
    assert spherical_collapse_mass(delta, (8.0, 8.0, 8.0), length, 2.0, 0.2) == 2.0 * in_sphere


def test_the_density_experiment_on_a_threshold_model_grows_as_computed_by_hand() -> None:
    from cosmoseg.protohalo.experiments import density_response, tidal_response

    fields = _blob_fields()  # δ = 2 exp(−r²/18) about the centre of a 16³ box of 1 Mpc/h cells
    truth = (fields.channel("delta") > 1.0).long()
    epsilons = [-0.5, -0.25, 0.0, 0.25, 0.5]
    table = density_response(fields, truth, 1, epsilons, _threshold_predictor(1.0))
    d = periodic_separation(16, 16.0, (8.0, 8.0, 8.0), dtype=torch.float64)
    r2 = (d**2).sum(0)
    # δ + ε > 1  <=>  r² < 2 s² ln(A / (1 − ε)), counted on the grid
    expected = [int((r2 < 2 * 9.0 * math.log(2.0 / (1.0 - e))).sum()) for e in epsilons]
    assert table["n_voxels"].tolist() == expected
    assert sorted(set(expected)) == expected  # strictly growing
    mass = fields.box.cosmology.particle_mass(16, 16.0)
    assert table["mass"] == pytest.approx(np.array(expected) * mass)
    assert table["iou_unmodified"][2] == 1.0 and table["iou_true"][2] == 1.0
    assert table["iou_unmodified"][0] == pytest.approx(expected[0] / expected[2])
    assert table.meta["centre"] == pytest.approx([8.0, 8.0, 8.0])
    # spherical collapse about the blob grows with ε as well
    assert np.all(np.diff(table["mass_spherical"]) >= 0) and table["mass_spherical"][-1] > 0
    # a tide leaves δ, so the threshold model does not move
    tidal = tidal_response(fields, truth, 1, [-0.5, 0.5], _threshold_predictor(1.0))
    assert tidal["n_voxels"].tolist() == [expected[2]] * 2
    with pytest.raises(ValueError, match="unknown halo id 2"):
        density_response(fields, truth, 2, epsilons, _threshold_predictor(1.0))


def test_the_sigma8_and_bias_experiments_on_a_threshold_model() -> None:
    from cosmoseg.protohalo.experiments import bias_response, sigma8_response

    fields = _blob_fields()
    truth = (fields.channel("delta") > 1.0).long()
    predict = _threshold_predictor(1.0)
    # the toy "simulation" at σ8 × f: the region where f δ > 1
    table = sigma8_response(
        [(fields, truth)],
        [0.8, 1.0],
        predict,
        simulate=lambda i, f: (fields.channel("delta") * f > 1.0).long(),
        n_bins=2,
    )
    assert len(table) == 4 and set(table["factor"].tolist()) == {0.8, 1.0}
    reference = table["factor"] == 1.0
    assert table["counts_pred"][reference].sum() == 1 and table["counts_sim"][reference].sum() == 1
    # the toy network and the toy simulation agree: the same single halo in both at each factor
    assert np.array_equal(table["counts_pred"], table["counts_sim"])
    with pytest.raises(ValueError, match=r"include 1\.0"):
        sigma8_response([(fields, truth)], [0.8, 1.2], predict)
    bias = bias_response([(fields, truth)], 0.1, predict, potential="poisson", n_bins=1)
    # one halo in each of −ε, 0, +ε: the count does not change, b = 0
    assert bias["counts_zero"].tolist() == [1] and bias["b1L_pred"].tolist() == [0.0]


def test_an_experiment_table_writes_its_csv_atomically_and_keeps_an_existing_one(tmp_path) -> None:
    from cosmoseg.protohalo.experiments import ExperimentTable

    table = ExperimentTable(
        columns={"epsilon": np.array([-0.5, 0.5]), "n": np.array([3, 4]), "r": np.array([1.5, np.nan])},
        units={"r": "Mpc/h"},
        meta={"halo_id": 1},
    )
    path = table.write_csv(tmp_path / "t.csv")
    import csv

    with path.open() as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    assert [int(r["n"]) for r in rows] == [3, 4] and math.isnan(float(rows[1]["r"]))
    assert "# halo_id: 1" in path.read_text()
    path.write_text("keep")
    with pytest.raises(FileExistsError, match="--overwrite"):
        table.write_csv(path)
    assert path.read_text() == "keep"
    table.write_csv(path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]
