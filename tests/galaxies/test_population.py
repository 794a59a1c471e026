"""Population models: what is fitted matches the training catalog, draws are reproducible and keyed on the halo,
files round-trip, and catalogs or files that do not fit are refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cosmoseg.data import Box, GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.galaxies.model import paint_galaxies
from cosmoseg.galaxies.population import (
    SATELLITE_RADIUS,
    concatenate_boxes,
    evaluate_population,
    fit_population,
    fit_radial_distribution,
    load_population,
    populate_galaxies,
    satellite_radii,
    split_by_halo,
)
from cosmoseg.measure.twosample import ks_2samp

HYPER = {"epochs": 4, "hidden_features": 8, "layers": 1}


def halos_of(n: int, seed: int, length: float = 150.0) -> HaloCatalog:
    g = torch.Generator().manual_seed(seed)
    log_mass = 11.8 + 2.7 * torch.rand(n, generator=g, dtype=torch.float64) ** 2
    columns = {
        "pos": length * torch.rand((n, 3), generator=g, dtype=torch.float64),
        "vel": 300.0 * torch.randn((n, 3), generator=g, dtype=torch.float64),
        "mass": 10.0**log_mass,
        "id": torch.arange(n) + 1000 * seed,
    }
    return HaloCatalog(columns=columns, box=Box(length=length))


@pytest.fixture(scope="module")
def training(one_thread_module) -> tuple[HaloCatalog, GalaxyCatalog]:
    halos = halos_of(1500, seed=1)
    return halos, paint_galaxies(halos, seed=4)


@pytest.fixture(scope="module")
def one_thread_module():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(training):
    return fit_population(*training, hyper=HYPER, seed=0)


def test_the_radial_distribution_is_the_training_satellites(training, model) -> None:
    halos, galaxies = training
    true_sat = torch.nonzero(~galaxies["is_central"]).reshape(-1)
    truth = satellite_radii(halos, galaxies, true_sat)
    drawn = populate_galaxies(model, halos, seed=3, generator=torch.Generator().manual_seed(0))
    ours = drawn[SATELLITE_RADIUS][~drawn["is_central"]].double()
    assert float(ks_2samp(ours, torch.from_numpy(truth)).statistic) < 0.06
    # and the stored column is the satellite's real distance from its host over r200m
    rows = torch.nonzero(~drawn["is_central"]).reshape(-1)
    np.testing.assert_allclose(satellite_radii(halos, drawn, rows), ours.numpy(), rtol=1e-4, atol=1e-5)


def test_quantiles_per_mass_bin_follow_the_host_mass() -> None:
    rng = np.random.default_rng(0)
    lm = rng.uniform(12, 14, 4000)
    x = rng.uniform(0, 1, 4000) * np.where(lm < 13, 0.3, 0.9)  # small hosts: satellites within 0.3 r200m
    edges, quantiles = fit_radial_distribution(x, lm)
    assert len(quantiles) == 6 and len(edges) == 5
    assert quantiles[0][-1] <= 0.3 + 1e-9 and quantiles[-1][-1] > 0.85


def test_occupation_numbers_and_velocities_match_the_training_catalog(training, model) -> None:
    halos, galaxies = training
    metrics = evaluate_population(model, halos, galaxies, seed=5)
    assert abs(metrics["n_ratio"] - 1.0) < 0.08
    assert abs(metrics["satellite_fraction"] - metrics["satellite_fraction_true"]) < 0.03
    assert model.occupation.alpha_c == pytest.approx(0.0, abs=1e-9)  # the galaxy model's centrals move with the halo
    assert model.occupation.alpha_s > 0.3


def test_draws_are_reproducible_and_keyed_on_the_halo(training, model) -> None:
    halos = training[0]
    a = populate_galaxies(model, halos, seed=7, generator=torch.Generator().manual_seed(1))
    b = populate_galaxies(model, halos, seed=7, generator=torch.Generator().manual_seed(1))
    for name in a.columns:
        torch.testing.assert_close(a[name], b[name])
    # a halo's galaxies (numbers, positions, velocities) do not depend on the rest of the catalog
    half = halos.select(torch.arange(0, len(halos), 2))
    c = populate_galaxies(model, half, seed=7, generator=torch.Generator().manual_seed(1))
    in_half = a["host"] % 2 == 0
    torch.testing.assert_close(a["pos"][in_half], c["pos"])
    torch.testing.assert_close(a["vel"][in_half], c["vel"])
    torch.testing.assert_close(a["host"][in_half] // 2, c["host"])


def test_min_mass_and_hosts(training, model) -> None:
    halos = training[0]
    cut = float(torch.quantile(halos["mass"], 0.5))
    drawn = populate_galaxies(model, halos, seed=1, generator=torch.Generator().manual_seed(0), min_mass=cut)
    assert bool((halos["mass"][drawn["host"]] >= cut).all())
    centrals = drawn.select(drawn["is_central"])
    assert len(torch.unique(centrals["host"])) == len(centrals)


def test_the_file_round_trips(tmp_path: Path, training, model) -> None:
    path = model.save(tmp_path / "population.pt", card={"data": "toy", "command": "test"})
    again = load_population(path)
    assert again.card["data"] == "toy" and again.occupation == model.occupation
    halos = training[0]
    a = populate_galaxies(model, halos, seed=2, generator=torch.Generator().manual_seed(3))
    b = populate_galaxies(again, halos, seed=2, generator=torch.Generator().manual_seed(3))
    for name in a.columns:
        torch.testing.assert_close(a[name], b[name])


def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such population model file"):
        load_population(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ArtifactError, match=r"junk\.pt: not a readable model file"):
        load_population(tmp_path / "junk.pt")
    shipped = Path(__file__).resolve().parents[2] / "cosmoseg" / "galaxies" / "default_models" / "flow.pt"
    with pytest.raises(ArtifactError, match="central galaxies only, not a population model"):
        load_population(shipped)


def test_missing_halo_properties_are_refused_by_name(training) -> None:
    halos, galaxies = training
    with_spin = halos.with_columns(spin=torch.full((len(halos),), 0.03, dtype=torch.float64))
    model = fit_population(with_spin, galaxies, conditions=("log_mass", "spin"), hyper=HYPER)
    with pytest.raises(ValidationError) as info:
        populate_galaxies(model, halos, seed=0, generator=torch.Generator(), where="my.pt")
    assert "my.pt was trained on halo propert(ies) ['spin']" in str(info.value)


def test_a_catalog_without_satellites_cannot_train_one() -> None:
    halos = halos_of(50, seed=3)
    centrals = paint_galaxies(halos, seed=1, satellites=False)
    with pytest.raises(ValidationError, match="satellites"):
        fit_population(halos, centrals, hyper=HYPER)


def test_boxes_stack_and_catalogs_split_with_their_hosts(training) -> None:
    halos, galaxies = training
    stacked_h, stacked_g = concatenate_boxes([(halos, galaxies), (halos, galaxies)])
    assert len(stacked_h) == 2 * len(halos) and len(stacked_g) == 2 * len(galaxies)
    torch.testing.assert_close(stacked_g["host"][len(galaxies) :], galaxies["host"] + len(halos))
    (train_h, train_g), (val_h, val_g) = split_by_halo(halos, galaxies, 0.25, seed=0)
    assert len(train_h) + len(val_h) == len(halos) and len(train_g) + len(val_g) == len(galaxies)
    assert len(val_h) == round(0.25 * len(halos))
    for h, g in ((train_h, train_g), (val_h, val_g)):
        # each galaxy still sits in its host: the distance to the host is within the truth's satellite radii
        r = satellite_radii(h, g, torch.arange(len(g)))
        assert float(r.max()) < 2.0
