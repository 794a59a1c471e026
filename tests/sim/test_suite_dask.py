"""Suites on a Dask cluster (issue #23): one box per task, the same boxes as in one process, and a worker that dies
loses no box."""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from cosmoseg.data import load_artifact, open_artifact
from cosmoseg.pipeline.executor import executor_config, open_executor
from cosmoseg.sim.suites import parse_suite, simulate_suite

pytest.importorskip("distributed")

TINY4 = {
    "suite": {"name": "t", "n_boxes": 4, "seed": 5},
    "grid": {"n": 16, "box": 32.0},
    "nbody": {"steps": 3, "output_redshifts": [1.0]},
    "halos": {"min_particles": 8, "segmentation_min_particles": 8},
    "cosmology": {"power_backend": "eisenstein-hu"},
}
"""The tiny suite of tests/sim/test_suites.py, with 4 boxes."""


def same_box(a: Path, b: Path) -> bool:
    """Whether two box files hold the same objects, every tensor equal bit for bit, and the same attributes."""
    first, second = load_artifact(a), load_artifact(b)
    if set(first) != set(second):
        return False
    for name, obj in first.items():
        other = second[name]
        tensors, others = obj._tensors(), other._tensors()
        if type(obj) is not type(other) or set(tensors) != set(others):
            return False
        if not all(t.dtype == others[k].dtype and torch.equal(t, others[k]) for k, t in tensors.items()):
            return False
    with open_artifact(a) as f, open_artifact(b) as g:
        return {k: str(v) for k, v in f.attrs.items()} == {k: str(v) for k, v in g.attrs.items()}


def dies_once(marker_dir: str, victim: int, function: Callable[[int], Any], index: int) -> Any:
    """Run ``function(index)``, except that the first time box ``victim`` comes, kill this worker process (SIGKILL):
    a node lost in the middle of a box."""
    marker = Path(marker_dir) / f"killed-{index}"
    if index == victim and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return function(index)


@pytest.mark.slow
def test_a_suite_on_two_workers_equals_the_local_run_and_resumes(tmp_path: Path, dask_scheduler: str) -> None:
    config = parse_suite(TINY4)
    local = simulate_suite(config, tmp_path / "local")
    messages: list[str] = []
    with open_executor(executor_config("dask", scheduler=dask_scheduler)) as executor:
        spread = simulate_suite(config, tmp_path / "dask", map_tasks=executor.map, log=messages.append)
        assert sorted(m.split(":")[0] for m in messages) == [f"box {i}" for i in range(4)]
        assert [p.name for p in spread] == [p.name for p in local]
        assert all(same_box(a, b) for a, b in zip(local, spread, strict=True))
        # resume: boxes already written are skipped, a missing one is made again
        spread[2].unlink()
        stamp = spread[0].stat().st_mtime_ns
        messages.clear()
        simulate_suite(config, tmp_path / "dask", resume=True, map_tasks=executor.map, log=messages.append)
    assert spread[0].stat().st_mtime_ns == stamp
    assert sum("skipped" in m for m in messages) == 3 and same_box(local[2], spread[2])


@pytest.mark.slow
def test_a_worker_that_dies_loses_only_its_box_which_is_run_again(tmp_path: Path, dask_scheduler: str) -> None:
    config = parse_suite({**TINY4, "suite": {**TINY4["suite"], "n_boxes": 3}})
    markers = tmp_path / "markers"
    markers.mkdir()
    with open_executor(executor_config("dask", scheduler=dask_scheduler)) as executor:

        def killing_map(function: Callable[[int], Any], items: Sequence[int]) -> Iterator[tuple[int, Any]]:
            return executor.map(functools.partial(dies_once, str(markers), 1, function), items)

        paths = simulate_suite(config, tmp_path / "s", map_tasks=killing_map)
    assert (markers / "killed-1").exists()  # the worker did die on box 1
    alone = simulate_suite(config, tmp_path / "one", boxes=[1])
    assert all(p.is_file() for p in paths) and same_box(paths[1], alone[0])


@pytest.mark.slow
def test_the_simulate_command_takes_the_executor_options(tmp_path: Path, dask_scheduler: str) -> None:
    from typer.testing import CliRunner

    from cosmoseg.cli import build_app

    suite = tmp_path / "tiny.toml"
    suite.write_text(
        '[suite]\nname = "t"\nn_boxes = 2\nseed = 5\n[grid]\nn = 8\nbox = 32.0\n[nbody]\nsteps = 2\n'
        '[halos]\nmin_particles = 8\nsegmentation_min_particles = 8\n[cosmology]\npower_backend = "eisenstein-hu"\n'
    )
    args = ["simulate", str(suite), "--output", str(tmp_path / "s"), "--device", "cpu", "-q", "--executor", "dask"]
    result = CliRunner().invoke(build_app(), [*args, "--scheduler", dask_scheduler])
    assert result.exit_code == 0, result.output
    assert "2 box file(s)" in result.output and (tmp_path / "s" / "box_0001.h5").is_file()
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 1 and 'executor "dask" needs a scheduler address' in result.output
