"""The joint-sampler interface: standardisation, checks, save / load with property names, catalog matrices."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from cosmoseg.data import Box, GalaxyCatalog
from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.galaxies.features import property_matrix
from cosmoseg.galaxies.samplers.base import (
    JointSampler,
    Progress,
    Standardizer,
    load_sampler,
    register_sampler,
)


@register_sampler
class LinearGaussian(JointSampler):
    """Least-squares linear mean plus independent Gaussian residuals (a reference with a known answer)."""

    method = "test-linear"
    has_log_prob = True

    def _fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: Progress | None) -> None:
        design = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
        self.coef = torch.linalg.lstsq(design, y.double()).solution.float()
        self.sigma = (design.float() @ self.coef - y).std(0)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.ones(len(x), 1)], dim=1) @ self.coef

    def _sample(self, x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn((n, len(x), self.coef.shape[1]), generator=generator)
        return self._predict(x) + noise * self.sigma

    def _log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Normal(self._predict(x), self.sigma).log_prob(y).sum(1)

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef, "sigma": self.sigma}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.coef, self.sigma = state["coef"], state["sigma"]


def _data(n: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = 11 + 3 * torch.rand((n, 1), generator=gen)
    y1 = 0.8 * (x[:, 0] - 12) + 10 + 0.2 * torch.randn(n, generator=gen)
    y2 = 2.0 + 0.1 * torch.randn(n, generator=gen)
    return x, torch.stack([y1, y2], dim=1)


def test_fit_and_sample_in_physical_units() -> None:
    x, y = _data()
    sampler = LinearGaussian(["log_mass"], ["log_mstar", "color_gi"]).fit(x, y)
    draws = sampler.sample(torch.tensor([[12.0], [13.5]]), n=4000, generator=torch.Generator().manual_seed(1))
    assert draws.shape == (4000, 2, 2)
    torch.testing.assert_close(draws[:, :, 0].mean(0), torch.tensor([10.0, 11.2]), atol=0.02, rtol=0)
    torch.testing.assert_close(draws[:, :, 0].std(0), torch.tensor([0.2, 0.2]), atol=0.01, rtol=0)


def test_log_prob_is_in_the_units_of_the_galaxy_properties() -> None:
    """The density of a standardised variable carries the Jacobian 1/std of the map back to physical units."""
    x, y = _data()
    sampler = LinearGaussian(["log_mass"], ["log_mstar", "color_gi"]).fit(x, y)
    truth = torch.distributions.Normal(
        torch.stack([0.8 * (x[:, 0] - 12) + 10, torch.full((len(x),), 2.0)], 1), torch.tensor([0.2, 0.1])
    )
    assert float(sampler.log_prob(x, y).mean()) == pytest.approx(float(truth.log_prob(y).sum(1).mean()), abs=0.02)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    x, y = _data()
    sampler = LinearGaussian(["log_mass"], ["log_mstar", "color_gi"], width=3).fit(x, y)
    path = sampler.save(tmp_path / "s.pt", card={"data": "synthetic", "command": "test", "metrics": {"nll": 1.0}})
    payload = torch.load(path, weights_only=True)
    assert payload["card"]["metrics"] == {"nll": 1.0} and payload["hyper"] == {"width": 3}
    loaded = load_sampler(path, condition_names=["log_mass"], target_names=["log_mstar", "color_gi"])
    a = sampler.sample(x[:5], n=3, generator=torch.Generator().manual_seed(9))
    b = loaded.sample(x[:5], n=3, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and loaded.card["data"] == "synthetic"


def test_a_file_fitted_on_other_properties_is_a_clear_error(tmp_path: Path) -> None:
    x, y = _data(200)
    path = LinearGaussian(["log_mass"], ["log_mstar", "color_gi"]).fit(x, y).save(tmp_path / "s.pt")
    with pytest.raises(ArtifactError) as err:
        load_sampler(path, condition_names=["m200"], target_names=["color_gi", "log_mstar"])
    assert "['log_mass']" in str(err.value) and "['m200']" in str(err.value)
    assert "['log_mstar', 'color_gi']" in str(err.value)
    (tmp_path / "foreign.pt").write_bytes(b"not a torch file")
    with pytest.raises(ArtifactError, match="not a readable sampler file"):
        load_sampler(tmp_path / "foreign.pt")


def test_bad_inputs_are_named() -> None:
    x, y = _data(100)
    sampler = LinearGaussian(["log_mass"], ["log_mstar", "color_gi"])
    with pytest.raises(ValidationError, match="not fitted"):
        sampler.sample(x)
    bad = y.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValidationError, match=r"'color_gi': 1"):
        sampler.fit(x, bad)
    with pytest.raises(ValidationError, match="shape \\(N, 2\\)"):
        sampler.fit(x, y[:, :1])
    with pytest.raises(ValidationError, match="paired"):
        sampler.fit(x, y[:50])
    with pytest.raises(ValidationError, match="distinct"):
        LinearGaussian(["a"], ["a", "b"])


def test_property_matrix_names_every_missing_column() -> None:
    """(Catalogs cannot hold NaNs: the data model refuses them when the catalog is made.)"""
    columns = {
        "pos": torch.zeros(3, 3),
        "log_mstar": torch.tensor([10.0, 10.5, 11.0]),
        "color_gi": torch.tensor([0.5, 0.7, 1.1]),
    }
    catalog = GalaxyCatalog(columns=columns, box=Box(length=10.0))
    torch.testing.assert_close(property_matrix(catalog, ["color_gi"]), columns["color_gi"][:, None])
    with pytest.raises(ValidationError) as err:
        property_matrix(catalog, ["log_mstar", "log_ssfr", "log_z", "pos"], role="galaxy catalog")
    text = str(err.value)
    assert "['log_ssfr', 'log_z']" in text and "'pos'" in text and "per-row scalar" in text


def test_standardizer_round_trip_and_jacobian() -> None:
    x = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
    s = Standardizer.fit(x)
    torch.testing.assert_close(s.inverse(s.forward(x)), x)
    assert s.forward(x).mean(0).abs().max() < 1e-6
    assert s.log_det() == pytest.approx(-float(torch.log(x.std(0, unbiased=False)).sum()), rel=1e-6)
