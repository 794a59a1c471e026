"""Galaxies for every box of a suite (``cosmoseg galaxies paint-suite``): per-box nuisance parameters, the cut,
determinism, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cosmoseg.data import HaloCatalog, load_artifact, save_artifact
from cosmoseg.errors import ConfigError
from cosmoseg.galaxies._examples import toy_halos
from cosmoseg.galaxies.model import VARIANTS
from cosmoseg.galaxies.suite_galaxies import NUISANCE_OFFSETS, SuiteGalaxySettings, nuisance_values, paint_suite


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    for i in range(3):
        save_artifact(tmp_path / f"box_{i:04d}.h5", {"halos": toy_halos(generator, n=200)})
    boxes = {f"{i:04d}": {} for i in range(10)}  # the suite has 10 boxes; 3 are made so far
    (tmp_path / "suite.json").write_text(json.dumps({"boxes": boxes}))
    return tmp_path


def test_each_box_gets_its_own_nuisance_point_within_the_ranges(suite: Path) -> None:
    settings = SuiteGalaxySettings(variant="moster13", seed=4)
    values = [nuisance_values(settings, 10, i) for i in range(10)]
    base = VARIANTS["moster13"]
    for name, (low, high) in NUISANCE_OFFSETS.items():
        offsets = [v[name] - getattr(base, name) for v in values]
        assert all(low <= o <= high for o in offsets)
        # a Latin hypercube: one point in each tenth of the range
        assert sorted(int((o - low) / (high - low) * 10) for o in offsets) == list(range(10))


def test_paint_suite_writes_the_cut_galaxies_with_their_nuisance_and_is_deterministic(suite: Path) -> None:
    settings = SuiteGalaxySettings(min_log_mstar=9.5, seed=1)
    paths = paint_suite(suite, suite / "a", settings)
    again = paint_suite(suite, suite / "b", settings)
    assert [p.name for p in paths] == ["galaxies_0000.h5", "galaxies_0001.h5", "galaxies_0002.h5"]
    for i, (path, other) in enumerate(zip(paths, again, strict=True)):
        galaxies, twin = load_artifact(path)["galaxies"], load_artifact(other)["galaxies"]
        torch.testing.assert_close(galaxies["pos"], twin["pos"])
        assert bool((galaxies["log_mstar"] >= 9.5).all()) and bool(galaxies["is_central"].any())
        # the values of box i of a 10-box suite (suite.json), not of a 3-box one
        expected = nuisance_values(settings, 10, i)
        assert galaxies.meta["nuisance_sat_log_m1"] == pytest.approx(expected["sat_log_m1"])
        assert galaxies.meta["box_index"] == i and galaxies.meta["galaxy_model"] == "fiducial"


def test_resume_keeps_files_of_the_same_settings_only(suite: Path) -> None:
    settings = SuiteGalaxySettings(seed=2)
    (path, *_) = paint_suite(suite, suite / "g", settings, boxes=[0])
    stamp = path.stat().st_mtime_ns
    paint_suite(suite, suite / "g", settings, boxes=[0], resume=True)
    assert path.stat().st_mtime_ns == stamp
    paint_suite(suite, suite / "g", SuiteGalaxySettings(seed=3), boxes=[0], resume=True)
    assert path.stat().st_mtime_ns != stamp


def test_bad_settings_and_missing_boxes_are_named(suite: Path) -> None:
    with pytest.raises(ConfigError, match="unknown galaxy model variant 'nope'"):
        SuiteGalaxySettings(variant="nope")
    with pytest.raises(ConfigError, match="'sat_log_m1'"):
        SuiteGalaxySettings(nuisance={"sat_log_m1": (0.3, -0.3)})
    with pytest.raises(ConfigError, match="not a galaxy model parameter"):
        SuiteGalaxySettings(nuisance={"omega_m": (0.0, 0.1)})
    with pytest.raises(ConfigError, match=r"boxes \[7\]"):
        paint_suite(suite, suite / "x", SuiteGalaxySettings(), boxes=[7])


def test_other_haloes_of_the_same_boxes_get_the_same_nuisance_and_draws(suite: Path) -> None:
    """--halos: a box's galaxies from other haloes (e.g. read off the initial conditions) differ by the haloes only."""
    halos_dir = suite / "halos-other"
    halos_dir.mkdir()
    for i in range(3):
        halos = load_artifact(suite / f"box_{i:04d}.h5")["halos"]
        shifted = halos.with_columns(pos=halos["pos"] + 1.0)
        save_artifact(halos_dir / f"halos_{i:04d}.h5", {"halos": shifted})
    settings = SuiteGalaxySettings(seed=5)
    own = paint_suite(suite, suite / "own", settings)
    other = paint_suite(suite, suite / "other", settings, halos_dir=halos_dir)
    for a, b in zip(own, other, strict=True):
        galaxies, moved = load_artifact(a)["galaxies"], load_artifact(b)["galaxies"]
        torch.testing.assert_close(moved["log_mstar"], galaxies["log_mstar"])
        delta = torch.remainder(moved["pos"] - galaxies["pos"] + 0.5 * galaxies.box.length, galaxies.box.length)
        torch.testing.assert_close(delta - 0.5 * galaxies.box.length, torch.ones_like(delta), atol=1e-4, rtol=0)
    # a resumed run with the suite's own haloes does not take the other folder's files as done
    stamp = other[0].stat().st_mtime_ns
    paint_suite(suite, suite / "other", settings, boxes=[0], resume=True)
    assert other[0].stat().st_mtime_ns != stamp
    with pytest.raises(ConfigError, match="no such folder of halo catalogs"):
        paint_suite(suite, suite / "x", settings, halos_dir=suite / "missing")


def test_halo_columns_keep_only_the_named_columns(suite: Path) -> None:
    """--halo-columns pos,vel,mass paints as the model paints haloes that have no other column."""
    halos = load_artifact(suite / "box_0000.h5")["halos"]
    assert {"concentration", "log_env_density_r2"} <= set(halos.columns)
    bare_dir = suite / "bare"
    bare_dir.mkdir()
    bare = HaloCatalog(columns={k: halos.columns[k] for k in ("pos", "vel", "mass")}, box=halos.box)
    save_artifact(bare_dir / "halos_0000.h5", {"halos": bare})
    settings = SuiteGalaxySettings(seed=6, halo_columns=("pos", "vel", "mass"))
    (path,) = paint_suite(suite, suite / "masses", settings, boxes=[0])
    (from_bare,) = paint_suite(suite, suite / "from-bare", SuiteGalaxySettings(seed=6), boxes=[0], halos_dir=bare_dir)
    (full,) = paint_suite(suite, suite / "full", SuiteGalaxySettings(seed=6), boxes=[0])
    galaxies = load_artifact(path)["galaxies"]
    torch.testing.assert_close(galaxies["log_mstar"], load_artifact(from_bare)["galaxies"]["log_mstar"])
    assert not torch.equal(galaxies["log_mstar"], load_artifact(full)["galaxies"]["log_mstar"])
    with pytest.raises(ConfigError, match=r"required column\(s\) \['vel'\]"):
        SuiteGalaxySettings(halo_columns=("pos", "mass"))
    with pytest.raises(ConfigError, match=r"lack the halo_columns \['z_form'\]"):
        paint_suite(suite, suite / "y", SuiteGalaxySettings(halo_columns=("pos", "vel", "mass", "z_form")), boxes=[0])
