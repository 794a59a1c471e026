"""The NN Gaussian and the regression samplers recover a known p(galaxy | halo) and honour the sampler interface.

Synthetic truth: x = log M ~ U(11, 14); y1 = 0.8 (x − 12) + 10 + N(0, 0.2²); y2 = −0.5 y1 + 1 + N(0, 0.1²), so
E[y | x] = (m1, −0.5 m1 + 1) with m1 = 0.8 (x − 12) + 10, Var y1 = 0.04, Var y2 = 0.02, Cov = −0.02, ρ = −1/√2.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.galaxies.samplers.base import SAMPLERS, load_sampler
from cosmoseg.galaxies.samplers.gauss import GaussianSampler
from cosmoseg.galaxies.samplers.regression import (
    RegressionSampler,
    inverse_density_weights,
    relevance,
    smogn_oversample,
)

SMALL = {"hidden": 16, "layers": 1, "epochs": 30, "batch_size": 256, "lr": 1e-2}
XS = torch.tensor([[11.5], [12.5], [13.5]])
RHO = -1 / math.sqrt(2)


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = 11 + 3 * torch.rand(n, 1, generator=g)
    y1 = 0.8 * (x[:, 0] - 12) + 10 + 0.2 * torch.randn(n, generator=g)
    y2 = -0.5 * y1 + 1 + 0.1 * torch.randn(n, generator=g)
    return x, torch.stack([y1, y2], 1)


def true_mean(x: torch.Tensor) -> torch.Tensor:
    m1 = 0.8 * (x[:, 0] - 12) + 10
    return torch.stack([m1, -0.5 * m1 + 1], 1)


def normal_lp(v: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    return -0.5 * ((v - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def true_log_prob(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    m1 = 0.8 * (x[:, 0] - 12) + 10
    return normal_lp(y[:, 0], m1, 0.2) + normal_lp(y[:, 1], -0.5 * y[:, 0] + 1, 0.1)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return make_data(3000, 1)


@pytest.fixture(scope="module")
def gauss(data) -> GaussianSampler:
    return GaussianSampler(["log_m"], ["y1", "y2"], **SMALL).fit(*data, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def regression(data) -> RegressionSampler:
    s = RegressionSampler(["log_m"], ["y1", "y2"], **SMALL)
    return s.fit(*data, generator=torch.Generator().manual_seed(0))


def test_registered() -> None:
    assert SAMPLERS["gauss"] is GaussianSampler and SAMPLERS["regression"] is RegressionSampler
    assert GaussianSampler.has_log_prob and not RegressionSampler.has_log_prob


def test_gauss_recovers_conditional_mean_and_covariance(gauss: GaussianSampler) -> None:
    mu, cov = gauss.mean_and_cov(XS)
    assert torch.allclose(mu, true_mean(XS), atol=0.06)
    var = torch.diagonal(cov, dim1=-2, dim2=-1)
    assert torch.allclose(var[:, 0], torch.full((3,), 0.04), rtol=0.3)
    assert torch.allclose(var[:, 1], torch.full((3,), 0.02), rtol=0.3)
    corr = cov[:, 0, 1] / var.prod(-1).sqrt()
    assert torch.allclose(corr, torch.full((3,), RHO), atol=0.15)  # an independent model has corr 0
    # the draws carry the same joint distribution
    draws = gauss.sample(torch.full((4000, 1), 12.5), generator=torch.Generator().manual_seed(3))[0]
    assert draws.shape == (4000, 2)
    assert torch.allclose(draws.mean(0), true_mean(XS[1:2])[0], atol=0.05)
    emp = torch.corrcoef(draws.T)[0, 1]
    assert abs(float(emp) - RHO) < 0.1


def test_gauss_log_prob_close_to_truth(gauss: GaussianSampler) -> None:
    x, y = make_data(2000, 99)  # held out
    lp = gauss.log_prob(x, y)
    assert lp.shape == (2000,)
    truth = true_log_prob(x, y).mean()
    assert abs(float(lp.mean() - truth)) < 0.1
    # the tolerance separates a correlated from an independent model (which loses ½ log 2 ≈ 0.35 per row)
    m = true_mean(x)
    indep = (normal_lp(y[:, 0], m[:, 0], 0.2) + normal_lp(y[:, 1], m[:, 1], math.sqrt(0.02))).mean()
    assert float(truth - indep) > 0.3


def test_regression_recovers_means_and_scatter_but_no_correlation(regression: RegressionSampler) -> None:
    assert torch.allclose(regression.predict(XS), true_mean(XS), atol=0.06)
    draws = regression.sample(torch.full((4000, 1), 12.5), n=2, generator=torch.Generator().manual_seed(3))
    assert draws.shape == (2, 4000, 2)
    d = draws[0]
    assert torch.allclose(d.mean(0), true_mean(XS[1:2])[0], atol=0.05)
    assert torch.allclose(d.std(0), torch.tensor([0.2, math.sqrt(0.02)]), rtol=0.15)
    # the documented limitation: the properties are drawn independently
    assert abs(float(torch.corrcoef(d.T)[0, 1])) < 0.1


def test_regression_log_prob_not_implemented(regression: RegressionSampler, data) -> None:
    with pytest.raises(NotImplementedError):
        regression.log_prob(*data)


@pytest.mark.parametrize("mode", ["inverse_density", "smogn"])
def test_regression_with_imbalance_handling_fits(mode: str, data) -> None:
    s = RegressionSampler(["log_m"], ["y1", "y2"], **SMALL, imbalance=mode)
    s.fit(*data, generator=torch.Generator().manual_seed(0))
    # re-weighting shifts the means slightly towards the tails, but the relation is kept
    assert torch.allclose(s.predict(XS), true_mean(XS), atol=0.15)
    assert torch.isfinite(s.sample(XS, n=3)).all()


@pytest.mark.parametrize("cls", [GaussianSampler, RegressionSampler])
def test_save_load_round_trip(cls, data, tmp_path: Path) -> None:
    s = cls(["log_m"], ["y1", "y2"], **{**SMALL, "epochs": 3}).fit(*data, generator=torch.Generator().manual_seed(0))
    path = s.save(tmp_path / "s.pt", card={"data": "synthetic"})
    loaded = load_sampler(path, condition_names=["log_m"], target_names=["y1", "y2"])
    assert type(loaded) is cls and loaded.hyper == s.hyper and loaded.card == {"data": "synthetic"}
    a = s.sample(XS, n=5, generator=torch.Generator().manual_seed(11))
    b = loaded.sample(XS, n=5, generator=torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
    if cls.has_log_prob:
        assert torch.equal(s.log_prob(*data), loaded.log_prob(*data))
    with pytest.raises(ArtifactError) as err:
        load_sampler(path, condition_names=["log_m"], target_names=["y1", "colour"])
    assert "colour" in str(err.value) and "y2" in str(err.value)


@pytest.mark.parametrize("cls", [GaussianSampler, RegressionSampler])
def test_fit_is_deterministic_under_the_generator(cls, data) -> None:
    hyper = {**SMALL, "epochs": 2}
    a = cls(["log_m"], ["y1", "y2"], **hyper).fit(*data, generator=torch.Generator().manual_seed(5))
    b = cls(["log_m"], ["y1", "y2"], **hyper).fit(*data, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.sample(XS, n=4), b.sample(XS, n=4))


@pytest.mark.parametrize("cls", [GaussianSampler, RegressionSampler])
def test_nan_inputs_raise(cls, data) -> None:
    x, y = data[0].clone(), data[1].clone()
    y[3, 1] = float("nan")
    s = cls(["log_m"], ["y1", "y2"], **{**SMALL, "epochs": 1})
    with pytest.raises(ValidationError, match="y2"):
        s.fit(x, y)
    s.fit(*data)
    with pytest.raises(ValidationError, match="log_m"):
        s.sample(torch.tensor([[float("nan")]]))


@pytest.mark.parametrize("cls", [GaussianSampler, RegressionSampler])
def test_any_number_of_conditions_and_targets_and_progress(cls) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(500, 3, generator=g)
    y = (x[:, :1] - x[:, 2:3]) + 0.1 * torch.randn(500, 1, generator=g)
    steps: list[int] = []
    s = cls(["a", "b", "c"], ["t"], **{**SMALL, "epochs": 4})
    s.fit(x, y, progress=lambda step, loss: steps.append(step) if math.isfinite(loss) else None)
    assert steps == list(range(4))
    assert s.sample(x[:7], n=2).shape == (2, 7, 1)
    if cls.has_log_prob:
        assert s.log_prob(x[:7], y[:7]).shape == (7,)


def test_bad_hyper_parameters_raise() -> None:
    with pytest.raises(ValidationError, match="unknown"):
        GaussianSampler(["a"], ["b"], widht=3)
    with pytest.raises(ValidationError, match="imbalance"):
        RegressionSampler(["a"], ["b"], imbalance="smote")
    with pytest.raises(ValidationError, match="epochs"):
        RegressionSampler(["a"], ["b"], epochs=0)


def test_inverse_density_weights_upweight_rare_targets() -> None:
    y = torch.randn(5000, generator=torch.Generator().manual_seed(0))
    w = inverse_density_weights(y, bins=20, max_weight=10.0)
    assert w.shape == (5000,)
    assert abs(float(w.mean()) - 1) < 1e-5
    assert float(w.max() / w.min()) <= 10.0 + 1e-4
    core, tail = w[y.abs() < 0.3].mean(), w[y.abs() > 2.5].mean()
    assert tail > 3 * core
    assert torch.equal(inverse_density_weights(torch.ones(10)), torch.ones(10))


def test_smogn_oversamples_only_near_rare_targets() -> None:
    g = torch.Generator().manual_seed(0)
    n = 4000
    y = torch.randn(n, generator=g)
    x = torch.stack([y + 0.3 * torch.randn(n, generator=g), torch.randn(n, generator=g)], 1)
    rel = relevance(y, bins=20)
    noise = 0.02
    x2, y2, rare = smogn_oversample(
        x, y, torch.Generator().manual_seed(1), bins=20, rare_threshold=0.8, oversample=2.0, k=5, noise=noise
    )
    n_rare = int(rare.sum())
    assert torch.equal(rare, rel >= 0.8) and 0 < n_rare < n // 5
    assert len(x2) == len(y2) == n + round(2.0 * n_rare)  # originals kept, 2 synthetic rows per rare row
    assert torch.equal(x2[:n], x) and torch.equal(y2[:n], y)
    syn = y2[n:]
    lower_edge = y[rare & (y < 0)].max()  # rare runs: the two tails of the normal target
    upper_edge = y[rare & (y > 0)].min()
    assert bool(((syn <= lower_edge + 5 * noise) | (syn >= upper_edge - 5 * noise)).all())
    assert bool((syn < 0).any() and (syn > 0).any())
    # deterministic under the generator; no rare rows or no oversampling leaves the data as it is
    again = smogn_oversample(x, y, torch.Generator().manual_seed(1), bins=20, oversample=2.0, noise=noise)
    assert torch.equal(again[1], y2)
    same = smogn_oversample(x, y, torch.Generator().manual_seed(1), oversample=0.0)
    assert same[0] is x and same[1] is y
