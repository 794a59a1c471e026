"""Training suites: parsing, per-box seeds and cosmologies, twins, resume, and the simulate command."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import load_artifact
from cosmoseg.errors import ConfigError
from cosmoseg.sim.suites import load_suite, parse_suite, simulate_suite

TINY = {
    "suite": {"name": "t", "n_boxes": 3, "seed": 5},
    "grid": {"n": 16, "box": 32.0},
    "nbody": {"steps": 3, "output_redshifts": [1.0]},
    "halos": {"min_particles": 8, "segmentation_min_particles": 8},
    "cosmology": {"power_backend": "eisenstein-hu"},
}


def test_bad_suites_report_every_problem() -> None:
    raw = {
        "suite": {"n_boxes": 0, "colour": 1},
        "grid": {"n": 15},
        "latin_hypercube": {"omega_m": [0.4, 0.2], "sigma8": [0.7, 0.9]},
        "extra": {},
    }
    with pytest.raises(ConfigError) as info:
        parse_suite(raw, "bad.toml")
    text = str(info.value)
    for expected in (
        "unknown table [extra]",
        "[suite]: unknown param 'colour'",
        "[suite]: param 'n_boxes' must be >= 1, got 0",
        "[grid]: param 'n' must be an even integer >= 2, got 15",
        "'sigma8' is not a Cosmology field",
        "omega_m needs low < high",
    ):
        assert expected in text


def test_latin_hypercube_cosmologies_and_seeds_per_box() -> None:
    config = parse_suite({**TINY, "latin_hypercube": {"omega_m": [0.25, 0.35], "sigma_8": [0.7, 0.9]}})
    omegas = sorted(config.box_cosmology(i).omega_m for i in range(3))
    # one point per third of the range: a Latin hypercube
    assert [int((om - 0.25) / (0.1 / 3)) for om in omegas] == [0, 1, 2]
    assert all(0.7 <= config.box_cosmology(i).sigma_8 <= 0.9 for i in range(3))
    assert len({config.box_seed(i) for i in range(3)}) == 3
    assert config.box_cosmology(1).power_backend == "eisenstein-hu"


def test_a_tiny_suite_runs_resumes_and_regenerates_one_box(tmp_path: Path) -> None:
    config = parse_suite(TINY)
    paths = simulate_suite(config, tmp_path / "s")
    assert [p.name for p in paths] == ["box_0000.h5", "box_0001.h5", "box_0002.h5"]
    box = load_artifact(paths[1])
    assert set(box) == {"fields", "halos", "segmentation", "halos_z1.00"}
    assert box["fields"].channels == ("delta", "phi") and box["segmentation"].n == 16
    assert "formation_redshift" in box["halos"].columns
    assert int(box["segmentation"].labels.max()) == int((box["halos"]["n_part"] >= 8).sum())
    with h5py.File(paths[1]) as f:
        assert f.attrs["box_index"] == 1 and f.attrs["box_seed"] == config.box_seed(1)
    stamp = paths[0].stat().st_mtime_ns
    messages: list[str] = []
    simulate_suite(config, tmp_path / "s", resume=True, log=messages.append)
    assert paths[0].stat().st_mtime_ns == stamp and len(messages) == 3 and "skipped" in messages[0]
    # box 1 alone, in another folder, is the same box
    alone = simulate_suite(config, tmp_path / "one", boxes=[1])
    assert torch.equal(load_artifact(alone[0])["fields"].values, box["fields"].values)
    assert torch.equal(load_artifact(alone[0])["segmentation"].labels, box["segmentation"].labels)


def test_twin_suites_store_both_runs_with_shared_fields(tmp_path: Path) -> None:
    raw = {**TINY, "suite": {"n_boxes": 1, "seed": 2, "twins": True}, "nbody": {"steps": 3}}
    (path,) = simulate_suite(parse_suite(raw), tmp_path)
    box = load_artifact(path)
    assert {"fields", "halos_a", "segmentation_a", "halos_b", "segmentation_b"} <= set(box)
    a, b = box["segmentation_a"].labels > 0, box["segmentation_b"].labels > 0
    agreement = float((a == b).double().mean())
    assert 0.5 < agreement < 1.0  # the same haloes mostly, but not identically


def test_the_simulate_command(tmp_path: Path) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(
        '[suite]\nname = "cli"\nn_boxes = 1\n[grid]\nn = 16\nbox = 32.0\n[nbody]\nsteps = 2\n'
        '[halos]\nmin_particles = 8\nsegmentation_min_particles = 8\n[cosmology]\npower_backend = "eisenstein-hu"\n'
    )
    runner = CliRunner()
    result = runner.invoke(build_app(), ["simulate", str(suite), "--output", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "1 box file(s)" in result.output and (tmp_path / "o" / "box_0000.h5").exists()
    assert (tmp_path / "o" / "suite.json").exists()
    bad = runner.invoke(build_app(), ["simulate", str(suite), "--boxes", "3", "--output", str(tmp_path / "o")])
    assert bad.exit_code == 1 and "outside 0..0" in bad.output


def test_shipped_suites_parse() -> None:
    paths = sorted((Path(__file__).resolve().parents[2] / "configs" / "suites").glob("*.toml"))
    assert paths, "configs/suites/ holds no suite file to check"
    for path in paths:
        load_suite(path)


def test_the_one_suite_split_is_the_one_the_shipped_models_record() -> None:
    from cosmoseg.sim.suites import box_index, split_suite

    # the paint suite's recorded split (12 boxes, seed 0, 2 validation, 2 test) and the galaxies suite's (8, 2)
    paint = split_suite(12, 2, 2, seed=0)
    assert (paint.train, paint.validation, paint.test) == ([0, 1, 3, 5, 6, 8, 10, 11], [4, 7], [2, 9])
    galaxies = split_suite(8, 2, seed=0)
    assert (galaxies.train, galaxies.validation, galaxies.test) == ([0, 1, 3, 5, 6, 7], [2, 4], [])
    assert galaxies.pick(["a", "b", "c", "d", "e", "f", "g", "h"], "validation") == ["c", "e"]
    assert split_suite(3, 3, seed=1, allow_all=True).validation == [0, 1, 2]
    assert box_index("suites/x/box_0007.h5") == 7 and box_index("other.h5") == 0


def test_a_split_that_leaves_nothing_to_train_on_is_refused() -> None:
    from cosmoseg.errors import ValidationError
    from cosmoseg.sim.suites import split_suite

    with pytest.raises(ValidationError, match=r"3 box\(es\) cannot give 2 validation and 1 test box\(es\) and"):
        split_suite(3, 2, 1, seed=0)
