"""dm2gal model files (cosmoseg.paint.models): the round trip, what they record of their training runs and split,
and the checks of fields against them (voxel size, particle resolution, cosmology, halo range)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch

from cosmoseg.data import Cosmology
from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.paint.models import (
    DEFAULT_MODEL,
    check_voxel,
    domain_notes,
    extrapolation_note,
    load_paint_model,
    particle_spacing,
    recorded_split,
    save_paint_model,
    seen_box_note,
)
from cosmoseg.paint.network import Dm2GalFCN

from .helpers import FCN_TINY

TRAINED = Cosmology()


def test_model_file_round_trip_and_voxel_check(tmp_path: Path) -> None:
    model = Dm2GalFCN(**FCN_TINY).eval()
    path = save_paint_model(tmp_path / "m.pt", model, voxel=2.0, threshold=1e8, step=3, card={"data": "toy"})
    again, meta = load_paint_model(path)
    assert isinstance(again, Dm2GalFCN) and meta["voxel"] == 2.0 and meta["card"]["data"] == "toy"
    x = torch.randn(1, 2, 20, 20, 20)
    torch.testing.assert_close(again(x), model(x))
    check_voxel(2.0, meta, "test")
    with pytest.raises(ValidationError, match=r"voxels of 1 Mpc/h .* trained on voxels of 2 Mpc/h"):
        check_voxel(1.0, meta, "test")
    # a file written before the linear path and the hinges existed (neither in its architecture) loads without them
    with_path = Dm2GalFCN(**FCN_TINY, linear=1).eval()
    path = save_paint_model(tmp_path / "linear.pt", with_path, voxel=2.0, threshold=1e8, step=3, card={})
    assert load_paint_model(path)[0].skip is not None
    with_hinges = Dm2GalFCN(**FCN_TINY).eval()  # hinges=1, the default
    path = save_paint_model(tmp_path / "hinges.pt", with_hinges, voxel=2.0, threshold=1e8, step=3, card={})
    torch.testing.assert_close(load_paint_model(path)[0](x), with_hinges(x))
    old = Dm2GalFCN(**FCN_TINY, hinges=0).eval()
    path = save_paint_model(tmp_path / "old.pt", old, voxel=2.0, threshold=1e8, step=3, card={})
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["metadata"]["arch"]["linear"], checkpoint["metadata"]["arch"]["hinges"]
    torch.save(checkpoint, path)
    again, _ = load_paint_model(path)
    assert again.skip is None
    torch.testing.assert_close(again(x), old(x))
    torch.save({"format": "something else"}, tmp_path / "bad.pt")
    with pytest.raises(ArtifactError):
        load_paint_model(tmp_path / "bad.pt")


def test_seen_box_note_names_the_role() -> None:
    meta = {"kind": "fcn", "split": {"n_validation": 1, "n_test": 1, "seed": 0, "train": ["a.h5"],
                                     "validation": ["b.h5"], "test": ["c.h5"]}}  # fmt: skip
    assert "was a train box" in seen_box_note("a.h5", meta)
    assert "was a validation box" in seen_box_note("b.h5", meta) and "--n-test 1 --seed 0" in seen_box_note(
        "b.h5", meta
    )
    assert seen_box_note("c.h5", meta) is None and seen_box_note("a.h5", {"kind": "fcn"}) is None
    # with simulation seeds, a box of another suite that shares a file name is not flagged, a renamed one is
    meta["split"]["seeds"] = {"a.h5": 11, "b.h5": 12, "c.h5": 13}
    assert seen_box_note("a.h5", meta, box_seed=99) is None
    assert "was a validation box" in seen_box_note("x.h5", meta, box_seed=12)


def test_recorded_split_fills_what_is_not_given() -> None:
    meta = {"split": {"n_validation": 2, "n_test": 3, "seed": 5}}
    assert recorded_split(meta, None, None, None) == (2, 3, 5)
    assert recorded_split(meta, 0, None, 7) == (0, 3, 7)
    assert recorded_split({}, None, 2, None) == (1, 2, 0)


def test_domain_notes_and_the_voxel_message_say_what_to_do() -> None:
    assert particle_spacing(TRAINED.particle_mass(128, 100.0), TRAINED) == pytest.approx(0.78125)
    meta = {"voxel": 0.78125, "particle_mass": TRAINED.particle_mass(128, 100.0), "cosmology": {"omega_m": 0.3111}}
    with pytest.raises(ValidationError, match=r"\(box / 0.78125\)\^3 particles"):
        domain_notes(meta, particle_mass=TRAINED.particle_mass(64, 100.0), cosmology=TRAINED, where="here")
    with pytest.raises(ValidationError, match=r"on the particle grid of runs whose particles are 0.78125 Mpc/h apart"):
        check_voxel(100.0 / 64, meta, "here")


def test_the_extrapolation_note_says_how_the_network_goes_on() -> None:
    without = extrapolation_note(torch.tensor([11.0, 13.0]), {"max_log_halo": 12.0, "arch": {"hinges": 0}})
    assert without is not None and "1 halo voxel(s) up to 10^13.00" in without and "levels off" in without
    with_hinges = extrapolation_note(torch.tensor([11.0, 13.0]), {"max_log_halo": 12.0, "arch": {"hinges": 1}})
    assert with_hinges is not None and "hinge features' last slope" in with_hinges
    assert extrapolation_note(torch.tensor([11.0, 12.0]), {"max_log_halo": 12.0}) is None
    assert extrapolation_note(torch.tensor([11.0, 13.0]), {}) is None  # the file does not say


def test_the_shipped_model_records_its_suite() -> None:
    suite = tomllib.loads((Path(__file__).parents[2] / "configs/suites/paint.toml").read_text())
    _, meta = load_paint_model(DEFAULT_MODEL)
    planck = Cosmology(**suite.get("cosmology", {}))
    assert meta["particle_mass"] == pytest.approx(planck.particle_mass(suite["grid"]["n"], suite["grid"]["box"]))
    keys = ("omega_m", "omega_b", "h", "n_s", "sigma_8", "w0", "wa")
    assert meta["cosmology"] == {k: getattr(planck, k) for k in keys}
