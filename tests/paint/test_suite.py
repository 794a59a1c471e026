"""Suites for dm2gal (cosmoseg.paint.suite): the split of a suite, the truth of its boxes and its redraws."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from cosmoseg.errors import ValidationError
from cosmoseg.paint.suite import Split, load_split, redraw_truth, registry_truth
from cosmoseg.sim.suites import split_suite

from .helpers import synthetic_box, toy_halos, toy_suite


def test_the_split_is_the_suite_split_of_every_trainer(tmp_path: Path) -> None:
    suite = toy_suite(tmp_path, n_grid=8)
    truth = registry_truth("galaxies.model", {}, seed=0)
    for seed in (0, 1, 2):
        split = load_split(suite, truth, grid=0, n_validation=1, n_test=2, seed=seed)
        shared = split_suite(4, 1, 2, seed=seed)
        names = [f"box_{i:04d}.h5" for i in range(4)]
        for role in ("train", "validation", "test"):
            assert split.names(role) == shared.pick(names, role)
    with pytest.raises(ValidationError, match="4 box\\(es\\) cannot give 2 validation and 2 test box\\(es\\)"):
        load_split(suite, truth, grid=0, n_validation=2, n_test=2, seed=0)


def test_the_truth_is_a_registered_stage_of_halos_to_galaxies() -> None:
    with pytest.raises(ValidationError, match="variant"):
        registry_truth("galaxies.model", {"variant": "nope"}, seed=0)
    with pytest.raises(ValidationError, match="must take 'halos'"):
        registry_truth("sim.fof", {}, seed=0)


def test_truth_redraws_are_other_realisations_of_the_same_haloes() -> None:
    halos = toy_halos(torch.Generator().manual_seed(3), n=150)
    truth = registry_truth("galaxies.model", {}, seed=0)(halos, 1)
    first, again = (redraw_truth("galaxies.model", {}, seed=0)(halos, 1) for _ in range(2))
    second = redraw_truth("galaxies.model", {}, seed=0, draw=1)(halos, 1)
    assert torch.equal(first["log_mstar"], again["log_mstar"])  # a redraw is reproducible
    for other in (truth, second):
        assert not torch.equal(first["pos"], other["pos"]) or not torch.equal(first["log_mstar"], other["log_mstar"])
    # no redraw of a box takes the seed of another box's truth
    for index in range(4):
        other_truth = registry_truth("galaxies.model", {}, seed=0)(halos, index)
        assert not torch.equal(first["log_mstar"], other_truth["log_mstar"])
    with pytest.raises(ValidationError, match="redraw index"):
        redraw_truth("galaxies.model", {}, seed=0, draw=-1)


def test_the_split_carries_the_box_seeds() -> None:
    a, b, c = (dataclasses.replace(synthetic_box(i), seed=seed) for i, seed in enumerate((7, None, 9)))
    split = Split(train=[a], validation=[b], test=[c])
    assert split.seeds() == {a.name: 7, c.name: 9} and split.seeds("test") == {c.name: 9}
