"""The executor choice (issue #23): one place, checked before anything runs; local by default; a Dask cluster runs
the same tasks with retries; without Dask a clear error says how to get it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.errors import ConfigError
from cosmoseg.pipeline import load_config
from cosmoseg.pipeline.commands import executor_from_options
from cosmoseg.pipeline.executor import (
    ExecutorConfig,
    LazyExecutor,
    LazySequence,
    executor_config,
    local_map,
    open_executor,
    run_in_order,
)


def square(x: int) -> int:
    return x * x


def fails_once(marker_dir: str, x: int) -> tuple[int, int]:
    """Raise the first time item ``x`` comes (a marker file remembers it), then return (x, the worker's pid)."""
    marker = Path(marker_dir) / f"failed-{x}"
    if not marker.exists():
        marker.touch()
        raise RuntimeError(f"item {x} fails once")
    return x, os.getpid()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"kind": "spark"}, "executor must be one of 'local', 'dask', got 'spark'"),
        ({"kind": "dask"}, 'executor "dask" needs a scheduler address (scheduler = "tcp://host:8786", --scheduler)'),
        ({"kind": "dask", "scheduler": "tcp://h:1", "workers": 2}, "a scheduler address or a number of workers"),
        ({"kind": "local", "workers": 2}, 'workers is for executor "dask"'),
        ({"kind": "dask", "workers": -1}, "workers must be an integer >= 1, got -1"),
    ],
)
def test_a_bad_executor_choice_is_one_clear_error(kwargs: dict, expected: str) -> None:
    kind = kwargs.pop("kind")
    with pytest.raises(ConfigError) as info:
        executor_config(kind, **kwargs)
    assert expected in str(info.value)


def test_the_pipeline_and_the_command_line_choose_the_executor(write_config) -> None:
    stage = '[[stage]]\nid = "f"\nuses = "sim.gaussian_field"\n'
    assert load_config(write_config(stage)).run.executor == ExecutorConfig()
    path = write_config('[run]\nexecutor = "dask"\nworkers = 3\n' + stage, name="dask.toml")
    chosen = load_config(path).run.executor
    assert chosen == ExecutorConfig(kind="dask", workers=3) and chosen.describe() == "dask, local cluster of 3 workers"
    with pytest.raises(ConfigError) as info:
        load_config(write_config('[run]\nexecutor = "dask"\n' + stage, name="bad.toml"))
    assert '[run]: executor "dask" needs a scheduler address' in str(info.value)
    # the options: none keeps the pipeline's choice; --scheduler replaces its workers
    assert executor_from_options(None, None, None, chosen) is None
    assert executor_from_options(None, "tcp://h:8786", None, chosen) == ExecutorConfig("dask", "tcp://h:8786")
    with pytest.raises(ConfigError, match="workers is for executor"):
        executor_from_options("local", None, 2)
    result = CliRunner().invoke(build_app(), ["run", str(path), "--executor", "dask", "--dry-run"])
    assert result.exit_code == 0 and "tasks on dask, local cluster of 3 workers" in result.output
    result = CliRunner().invoke(build_app(), ["run", str(path), "--executor", "ray"])
    assert result.exit_code == 1 and "executor must be one of 'local', 'dask', got 'ray'" in result.output


def test_local_tasks_run_in_order_in_this_process() -> None:
    assert list(local_map(square, [3, 1, 2])) == [(0, 9), (1, 1), (2, 4)]
    with open_executor(ExecutorConfig()) as executor:
        assert run_in_order(executor.map, square, [1, 2, 3]) == [1, 4, 9]
    lazy = LazyExecutor(ExecutorConfig())
    assert run_in_order(lazy.map, square, [4]) == [16]
    lazy.close()


def test_asking_for_dask_without_it_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ConfigError) as info, open_executor(executor_config("dask", workers=1)):
        pass
    assert 'pip install "cosmoseg[dask]"' in str(info.value)


@pytest.mark.slow
def test_dask_tasks_are_retried_and_come_back_by_index(tmp_path: Path, dask_scheduler: str) -> None:
    import functools

    with open_executor(executor_config("dask", scheduler=dask_scheduler)) as executor:
        results = run_in_order(executor.map, functools.partial(fails_once, str(tmp_path)), list(range(4)))
    assert [x for x, _ in results] == [0, 1, 2, 3]
    assert all(pid != os.getpid() for _, pid in results)  # ran in the workers, each after one failure
    assert len(list(tmp_path.glob("failed-*"))) == 4


def test_a_dask_map_takes_items_as_tasks_finish(dask_scheduler: str) -> None:
    """At most two tasks per worker in flight: a lazy sequence's items are made as tasks finish, not all at once."""
    made: list[int] = []

    def make(i: int) -> int:
        made.append(i)
        return i

    items = LazySequence(make, 12)
    assert len(items) == 12 and items[-1] == 11 and made == [11]
    made.clear()
    with open_executor(executor_config("dask", scheduler=dask_scheduler)) as executor:
        results = executor.map(square, items)
        first = next(results)
        assert len(made) <= 5  # 2 workers x 2 in flight, plus the one sent as the first finished
        rest = dict(results)
    assert {first[0]: first[1], **rest} == {i: i * i for i in range(12)}
    assert sorted(made) == list(range(12))  # each item made once
    with pytest.raises(IndexError):
        items[12]


@pytest.mark.slow
def test_a_local_cluster_of_n_workers_is_started_and_shut_down() -> None:
    pytest.importorskip("distributed")
    with open_executor(executor_config("dask", workers=1)) as executor:
        assert executor.client.cluster.workers and len(executor.client.cluster.workers) == 1
        assert run_in_order(executor.map, square, [5, 6]) == [25, 36]
        cluster = executor.client.cluster
    assert cluster.status.name == "closed"
