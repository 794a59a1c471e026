"""Boxes for dm2gal (cosmoseg.paint.data): a suite box as fields with its truth, its seed, the training crops."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cosmoseg.data import GalaxyCatalog, save_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.paint.data import PaintBox, load_suite_box, periodic_crop, random_crop, read_box_seed
from cosmoseg.paint.fields import from_log_mass
from cosmoseg.paint.suite import registry_truth

from .helpers import N, synthetic_box, toy_halos, toy_suite


def test_random_crop_keeps_inputs_target_and_extras_aligned() -> None:
    box = synthetic_box(1)
    marker = torch.arange(N**3, dtype=torch.float32).view(N, N, N)
    box = PaintBox(box.name, box.length, torch.stack([marker, marker]), marker, None, None)  # type: ignore[arg-type]
    for seed in range(5):
        inputs, target, extra = random_crop(box, 4, 2, torch.Generator().manual_seed(seed), extras=[marker])
        assert inputs.shape == (2, 8, 8, 8) and target.shape == (4, 4, 4)
        torch.testing.assert_close(inputs[0, 2:-2, 2:-2, 2:-2], target)
        torch.testing.assert_close(extra, target)
    crop = periodic_crop(marker, (-1, 0, N - 1), 2)  # wraps on both sides
    assert crop[0, 0, 0] == marker[N - 1, 0, N - 1] and crop[1, 1, 1] == marker[0, 1, 0]


def test_a_suite_box_holds_its_fields_and_the_truth_of_its_index(tmp_path: Path) -> None:
    truth = registry_truth("galaxies.model", {"variant": "moster13"}, seed=1)
    suite = toy_suite(tmp_path)
    box = load_suite_box(suite / "box_0001.h5", truth, 0)
    assert box.n == 16 and box.voxel == pytest.approx(100.0 / 16) and isinstance(box.galaxies, GalaxyCatalog)
    assert box.index == 1  # the truth's seed offset, from the file name
    assert float(from_log_mass(box.target).sum()) == pytest.approx(
        float((10.0 ** box.galaxies["log_mstar"].double()).sum()), rel=1e-4
    )
    save_artifact(tmp_path / "halos_only.h5", {"halos": toy_halos(torch.Generator().manual_seed(0), n=10)})
    with pytest.raises(ValidationError, match="save_particles"):
        load_suite_box(tmp_path / "halos_only.h5", truth, 0)


def test_box_seed_is_read(tmp_path: Path) -> None:
    halos = toy_halos(torch.Generator().manual_seed(0), n=10)
    save_artifact(tmp_path / "box_0000.h5", {"halos": halos}, attrs={"box_seed": 1234})
    save_artifact(tmp_path / "box_0001.h5", {"halos": halos})
    assert read_box_seed(tmp_path / "box_0000.h5") == 1234 and read_box_seed(tmp_path / "box_0001.h5") is None
