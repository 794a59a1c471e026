"""The io.* stages: their params follow the readers, and bad params are named before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from cosmoseg.errors import ConfigError
from cosmoseg.io.gadget import IDS_TO_GRID_MODES
from cosmoseg.io.stages import IdsToGrid
from cosmoseg.pipeline import load_config, plan_pipeline
from cosmoseg.plugins import build_registry


def test_the_id_modes_of_the_stage_are_the_readers() -> None:
    assert get_args(IdsToGrid) == IDS_TO_GRID_MODES


def plan(tmp_path: Path, stage: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(f'[[stage]]\nid = "x"\n{stage}\n')
    plan_pipeline(load_config(path), build_registry())


def test_bad_params_are_named_before_anything_runs(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.zeros((4, 4, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"param 'length' \(Mpc/h\) is needed for a .npy cube"):
        plan(tmp_path, 'uses = "io.field"\nparams = { path = "d.npy" }')
    with pytest.raises(ConfigError, match="'id_offset' is used with ids_to_grid = 'offset' only"):
        plan(tmp_path, 'uses = "io.snapshot"\nparams = { path = "d.npy", id_offset = 5 }')
    with pytest.raises(ConfigError, match=r"param 'part_type' must be <= 5, got 7"):
        plan(tmp_path, 'uses = "io.snapshot"\nparams = { path = "d.npy", part_type = 7 }')
    with pytest.raises(ConfigError, match=r"param 'length' must be >= 0, got -1.0"):
        plan(tmp_path, 'uses = "io.field"\nparams = { path = "d.npy", length = -1.0 }')
    with pytest.raises(ConfigError, match="code_units' has unknown key"):
        plan(tmp_path, 'uses = "io.halos"\nparams = { path = "d.npy", code_units = { UnitLength = 1.0 } }')
    with pytest.raises(ConfigError, match="missing required param 'path'"):
        plan(tmp_path, 'uses = "io.galaxies"')
    with pytest.raises(ConfigError, match="must be one of"):
        plan(tmp_path, 'uses = "io.halos"\nparams = { path = "d.npy", kind = "clusters" }')
