"""TARP expected coverage: a naive loop agrees, calibrated posteriors lie on the diagonal, broken ones do not."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
import torch

from cosmoseg.data import ParameterEstimate, Table
from cosmoseg.measure import figures
from cosmoseg.measure.tarp import gaussian_samples, tarp, tarp_coverage, tarp_table

B, S, P = 2000, 200, 2


def toy(width: float = 1.0, shift: float = 0.0, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Truths θ ~ N(μ, 1) about means μ ~ N(0, 3²); posterior samples ~ N(μ + shift, width²): (B, S, P), (B, P)."""
    g = torch.Generator().manual_seed(seed)
    mu = 3.0 * torch.randn((B, P), generator=g, dtype=torch.float64)
    truth = mu + torch.randn((B, P), generator=g, dtype=torch.float64)
    samples = mu[:, None] + shift + width * torch.randn((B, S, P), generator=g, dtype=torch.float64)
    return samples, truth


def test_agrees_with_a_naive_loop() -> None:
    g = torch.Generator().manual_seed(3)
    samples = torch.randn((6, 9, 3), generator=g, dtype=torch.float64)
    truth = torch.randn((6, 3), generator=g, dtype=torch.float64)
    low, high = torch.tensor([-3.0, -2.0, -4.0]), torch.tensor([3.0, 2.0, 1.0])
    result = tarp_coverage(samples, truth, low=low, high=high, n_alpha=11, generator=torch.Generator().manual_seed(5))
    reference = torch.rand((6, 3), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expected = []
    for b in range(6):
        r = reference[b] * (high - low) + low  # the reference point in the parameters' units
        scale = high - low
        d_truth = float((((truth[b] - r) / scale) ** 2).sum())
        closer = sum(float((((samples[b, s] - r) / scale) ** 2).sum()) < d_truth for s in range(9))
        expected.append((closer + 0.5) / 10)
    assert result.f.tolist() == pytest.approx(expected)
    alpha = [i / 10 for i in range(11)]
    assert result.alpha.tolist() == pytest.approx(alpha)
    assert result.ecp.tolist() == pytest.approx([sum(f < a for f in expected) / 6 for a in alpha])
    assert result.ecp_std is None and result.n == 6 and result.n_samples == 9


def test_a_calibrated_posterior_lies_on_the_diagonal() -> None:
    samples, truth = toy()
    result = tarp_coverage(samples, truth, n_bootstrap=200, generator=torch.Generator().manual_seed(1))
    assert result.ecp_std is not None and result.ecp_low is not None and result.ecp_high is not None
    deviation = (result.ecp - result.alpha).abs()
    # a few bootstrap σ, plus the 1/(S+1) steps of f; the ends are exact
    assert (deviation <= 4 * result.ecp_std + 1 / (S + 1)).all()
    assert float(result.ecp[0]) == 0.0 and float(result.ecp[-1]) == 1.0
    assert result.area < 0.02 and result.max_deviation < 0.04 and result.ks_pvalue > 1e-3
    assert ((result.ecp_low <= result.ecp + 1e-12) & (result.ecp <= result.ecp_high + 1e-12)).all()
    assert float(result.ecp_std[50]) == pytest.approx((0.25 / B) ** 0.5, rel=0.3)  # binomial scatter at α = ½


@pytest.mark.parametrize(("name", "width", "shift"), [("over-confident", 0.5, 0.0), ("biased", 1.0, 1.0)])
def test_over_confident_and_biased_posteriors_are_off_the_diagonal(name: str, width: float, shift: float) -> None:
    samples, truth = toy(width, shift)
    result = tarp_coverage(samples, truth, n_bootstrap=200, generator=torch.Generator().manual_seed(1))
    assert result.ecp_std is not None
    assert result.area > 0.04, name
    assert result.max_deviation > 0.08, name
    z = (result.ecp - result.alpha).abs() / result.ecp_std.clamp_min(1e-12)
    assert float(z.max()) > 8, name
    assert result.ks_pvalue < 1e-8, name


def test_an_over_confident_curve_crosses_the_diagonal_from_above() -> None:
    result = tarp_coverage(*toy(0.5), n_alpha=11, generator=torch.Generator().manual_seed(1))
    deviation = result.ecp - result.alpha
    assert (deviation[1:4] > 0.05).all() and (deviation[7:10] < -0.05).all()
    assert result.signed_area == pytest.approx(0.5 - float(result.f.mean()), abs=0.01)


def test_gaussian_fallback_draws_samples_from_mean_and_std() -> None:
    g = torch.Generator().manual_seed(2)
    mu = 3.0 * torch.randn((B, P), generator=g, dtype=torch.float64)
    truth = mu + torch.randn((B, P), generator=g, dtype=torch.float64)
    std = torch.ones((B, P), dtype=torch.float64)
    estimate = ParameterEstimate(names=("omega_m", "sigma_8"), mean=mu, std=std, truth=truth)
    result = tarp(estimate, n_samples=200, n_bootstrap=0, generator=torch.Generator().manual_seed(4))
    assert result.n_samples == 200 and result.area < 0.02
    # the same draws, made by hand: samples first, then the reference points, from the one generator
    g = torch.Generator().manual_seed(4)
    draws = gaussian_samples(mu, std, 200, generator=g)
    assert draws.shape == (B, 200, P)
    again = tarp_coverage(draws, truth, generator=g)
    assert torch.equal(again.ecp, result.ecp)
    narrow = ParameterEstimate(names=("omega_m", "sigma_8"), mean=mu, std=0.5 * std, truth=truth)
    assert tarp(narrow, n_samples=200, n_bootstrap=0, generator=torch.Generator().manual_seed(4)).area > 0.04
    table = tarp_table(narrow, n_samples=50, n_bootstrap=10, generator=torch.Generator().manual_seed(4))
    assert table.meta["source"] == "gaussian" and table.meta["n_samples"] == 50


def test_bad_inputs_are_refused_clearly() -> None:
    samples, truth = toy()
    no_truth = ParameterEstimate(names=("a", "b"), mean=truth, std=torch.ones_like(truth))
    with pytest.raises(ValueError, match="truth"):
        tarp(no_truth)
    with pytest.raises(ValueError, match="shape"):
        tarp_coverage(samples[:, :, :1], truth)
    constant = truth.clone()
    constant[:, 1] = 0.3
    with pytest.raises(ValueError, match=r"empty range for parameter\(s\) \[1\]"):
        tarp_coverage(samples, constant)
    result = tarp_coverage(samples, constant, low=[-10.0, 0.0], high=[10.0, 1.0])  # a prior range serves
    assert result.ecp.shape == (101,)
    with pytest.raises(ValueError, match="n_bootstrap"):
        tarp_coverage(samples, truth, n_bootstrap=-1)


def test_the_table_round_trips_through_hdf5_and_figure_for_table(tmp_path: Path) -> None:
    samples, truth = toy(seed=3)
    estimate = ParameterEstimate(
        names=("omega_m", "sigma_8"), mean=samples.mean(1), std=samples.std(1), samples=samples[:, :50], truth=truth
    )
    table = tarp_table(estimate, n_bootstrap=50, generator=torch.Generator().manual_seed(0), label="GNN")
    assert set(table.columns) == {"alpha", "ecp", "ecp_err", "ecp_low", "ecp_high"}
    assert table.meta["kind"] == "tarp" and table.meta["source"] == "samples" and table.meta["n_samples"] == 50
    assert table.meta["parameter_0"] == "omega_m" and 0 <= float(table.meta["area"]) < 0.05
    with h5py.File(tmp_path / "t.h5", "w") as f:
        table.to_hdf5(f.create_group("tarp"))
    with h5py.File(tmp_path / "t.h5", "r") as f:
        back = Table.from_hdf5(f["tarp"])
    assert back.meta == table.meta and all(torch.equal(back[c], table[c]) for c in table.columns)
    assert figures.table_kind(back) == "tarp"
    assert figures.guess_kind(Table(columns=dict(back.columns))) == "tarp"
    other = tarp_table(estimate, n_bootstrap=0, generator=torch.Generator().manual_seed(1), label="other")
    kind, fig = figures.figure_for_table(back, other, title="TARP")
    assert kind == "tarp"
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[0] == "calibrated" and texts[1].startswith("GNN") and texts[2].startswith("other")
    assert "bootstrap 95%" in ax.get_legend().get_title().get_text()
    assert "alpha" in ax.get_xlabel() and "coverage" in ax.get_ylabel()
    assert len(ax.collections) == 1  # the band of the bootstrapped curve
    figures.save_figure(fig, tmp_path / "tarp.png")
    assert (tmp_path / "tarp.png").read_bytes()[:4] == b"\x89PNG"
