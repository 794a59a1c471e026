"""The paper's HOD benchmark: stellar masses redrawn per host-mass bin and central/satellite."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from cosmoseg.data import Box, GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.paint.baselines import ConditionalMassResampler, hod_catalog_baseline, paper_hod_baseline

BOX = Box(length=50.0)


def make_halos(log_mass: torch.Tensor) -> HaloCatalog:
    g = torch.Generator().manual_seed(1)
    n = log_mass.numel()
    return HaloCatalog(
        columns={"pos": torch.rand(n, 3, generator=g, dtype=torch.float64) * 50.0, "mass": 10.0**log_mass},
        box=BOX,
    )


def make_galaxies(halos: HaloCatalog, sat_per_halo: int = 2, seed: int = 0, with_mstar: bool = True) -> GalaxyCatalog:
    """One central per halo (log M* ≈ log M - 2) and ``sat_per_halo`` satellites (log M* ≈ log M - 4)."""
    g = torch.Generator().manual_seed(seed)
    n = len(halos)
    host = torch.cat([torch.arange(n), torch.arange(n).repeat_interleave(sat_per_halo)])
    is_central = torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n * sat_per_halo, dtype=torch.bool)])
    log_m = torch.log10(halos["mass"])[host]
    columns = {
        "pos": halos["pos"][host] + torch.randn(host.numel(), 3, generator=g, dtype=torch.float64) * 0.1,
        "host": host,
        "is_central": is_central,
    }
    if with_mstar:
        shift = torch.where(is_central, 2.0, 4.0)
        columns["log_mstar"] = log_m - shift + 0.2 * torch.randn(host.numel(), generator=g, dtype=torch.float64)
    return GalaxyCatalog(columns=columns, box=BOX)


def uniform_log_mass(n: int, lo: float = 11.0, hi: float = 14.0, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def test_values_come_only_from_the_matching_bin_and_kind() -> None:
    halos = make_halos(uniform_log_mass(300))
    truth = make_galaxies(halos)
    res = ConditionalMassResampler(bin_dex=0.2).fit(truth, halos)
    out = res.assign(truth, halos, torch.Generator().manual_seed(0))
    assert torch.equal(out["pos"], truth["pos"]) and torch.equal(out["is_central"], truth["is_central"])
    assert not torch.equal(out["log_mstar"], truth["log_mstar"])
    bins = res.host_bin(halos["mass"][truth["host"]])
    allowed: dict[tuple[bool, int], set[float]] = {}
    for central, b, v in zip(truth["is_central"].tolist(), bins.tolist(), truth["log_mstar"].tolist(), strict=True):
        allowed.setdefault((central, b), set()).add(v)
    for central, b, v in zip(out["is_central"].tolist(), bins.tolist(), out["log_mstar"].tolist(), strict=True):
        assert v in allowed[(central, b)]
    values = res.training_values(central=True, host_mass=10**12.05)
    assert set(values.tolist()) == allowed[(True, 60)]
    assert out.meta["log_mstar_model"] == "conditional-resampling" and out.meta["log_mstar_bin_dex"] == 0.2


def test_distribution_per_bin_matches_and_kinds_stay_apart() -> None:
    train_halos = make_halos(uniform_log_mass(3000, 12.0, 12.2))
    truth = make_galaxies(train_halos, sat_per_halo=1, seed=3)
    test_halos = make_halos(torch.full((3000,), 12.15, dtype=torch.float64))
    hod = make_galaxies(test_halos, sat_per_halo=1, with_mstar=False)
    out = hod_catalog_baseline(truth, train_halos, hod, test_halos, generator=torch.Generator().manual_seed(4))
    res = ConditionalMassResampler().fit(truth, train_halos)
    host_bin = int(res.host_bin(test_halos["mass"][:1])[0])
    assert host_bin == 121
    train_bins = res.host_bin(train_halos["mass"][truth["host"]])
    for central in (True, False):
        got = out["log_mstar"][out["is_central"] == central].numpy()
        ref = truth["log_mstar"][(truth["is_central"] == central) & (train_bins == host_bin)].numpy()
        assert stats.ks_2samp(got, ref).pvalue > 1e-3
    # centrals sit ~2 dex above satellites in the truth; the draws keep them apart
    assert out["log_mstar"][out["is_central"]].min() > out["log_mstar"][~out["is_central"]].max()
    assert out["log_mstar"].dtype == torch.float64


def test_empty_bins_fall_back_to_the_nearest_bin_of_the_same_kind() -> None:
    train_halos = make_halos(torch.tensor([12.05, 12.05, 13.05, 13.05], dtype=torch.float64))
    truth = make_galaxies(train_halos, sat_per_halo=1)
    res = ConditionalMassResampler(bin_dex=0.1).fit(truth, train_halos)
    low_c = set(truth["log_mstar"][:2].tolist())
    high_c = set(truth["log_mstar"][2:4].tolist())
    low_s = set(truth["log_mstar"][4:6].tolist())
    high_s = set(truth["log_mstar"][6:8].tolist())
    test_halos = make_halos(torch.tensor([10.0, 12.35, 12.55, 12.75, 15.0], dtype=torch.float64))
    hod = make_galaxies(test_halos, sat_per_halo=1, with_mstar=False)
    out = res.assign(hod, test_halos, torch.Generator().manual_seed(0))["log_mstar"].tolist()
    centrals, satellites = out[:5], out[5:]
    # bins 100, 123, 125 (tie between 120 and 130: goes lower), 127, 150
    assert [v in low_c for v in centrals] == [True, True, True, False, False]
    assert [v in high_c for v in centrals] == [False, False, False, True, True]
    assert [v in low_s for v in satellites] == [True, True, True, False, False]
    assert [v in high_s for v in satellites] == [False, False, False, True, True]


def test_deterministic_with_a_generator_and_float32_kept() -> None:
    halos = make_halos(uniform_log_mass(200))
    truth = make_galaxies(halos)
    f32 = truth.with_columns(pos=truth["pos"].float(), log_mstar=truth["log_mstar"].float())
    a = paper_hod_baseline(truth, halos, f32, halos, generator=torch.Generator().manual_seed(9))
    b = paper_hod_baseline([truth], [halos], f32, halos, generator=torch.Generator().manual_seed(9))
    c = paper_hod_baseline(truth, halos, f32, halos, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a["log_mstar"], b["log_mstar"]) and not torch.equal(a["log_mstar"], c["log_mstar"])
    assert a["log_mstar"].dtype == torch.float32


def test_fits_over_several_boxes() -> None:
    h1, h2 = make_halos(torch.full((5,), 12.05, dtype=torch.float64)), make_halos(uniform_log_mass(7, 13.0, 13.09))
    g1, g2 = make_galaxies(h1, seed=1), make_galaxies(h2, seed=2)
    res = ConditionalMassResampler().fit([g1, g2], [h1, h2])
    assert set(res.training_values(central=True, host_mass=10**12.05).tolist()) == set(g1["log_mstar"][:5].tolist())
    assert set(res.training_values(central=False, host_mass=10**13.05).tolist()) == set(g2["log_mstar"][7:].tolist())


def test_missing_columns_and_bad_hosts_are_named_at_once() -> None:
    halos = make_halos(uniform_log_mass(10))
    truth = make_galaxies(halos)
    bare = GalaxyCatalog(columns={"pos": truth["pos"]}, box=BOX)
    with pytest.raises(ValidationError) as info:
        ConditionalMassResampler().fit(bare, halos)
    assert all(name in str(info.value) for name in ("host", "is_central", "log_mstar"))
    res = ConditionalMassResampler().fit(truth, halos)
    with pytest.raises(ValidationError) as info:
        res.assign(bare, halos, torch.Generator())
    assert "'host'" in str(info.value) and "'is_central'" in str(info.value) and "log_mstar" not in str(info.value)
    bad = truth.with_columns(host=truth["host"] + 5, is_central=truth["is_central"].long())
    with pytest.raises(ValidationError) as info:
        res.assign(bad, halos, torch.Generator())
    assert "outside the halo catalog" in str(info.value) and "bool" in str(info.value)
    with pytest.raises(ValidationError, match="2 halo catalog"):
        ConditionalMassResampler().fit([truth], [halos, halos])
    with pytest.raises(ValidationError, match="fit"):
        ConditionalMassResampler().assign(truth, halos, torch.Generator())
    with pytest.raises(ValidationError, match="bin_dex"):
        ConditionalMassResampler(bin_dex=0.0)


def test_a_kind_absent_from_training_cannot_be_assigned() -> None:
    halos = make_halos(uniform_log_mass(10))
    centrals_only = make_galaxies(halos, sat_per_halo=0)
    res = ConditionalMassResampler().fit(centrals_only, halos)
    assert res.assign(centrals_only, halos, torch.Generator()).meta["log_mstar_model"] == "conditional-resampling"
    with pytest.raises(ValidationError, match="no satellite"):
        res.assign(make_galaxies(halos), halos, torch.Generator())
