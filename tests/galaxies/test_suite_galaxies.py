"""Galaxies for every box of a suite (``cosmoseg galaxies paint-suite``): per-box nuisance parameters, the cut,
determinism, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cosmoseg.data import load_artifact, save_artifact
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
