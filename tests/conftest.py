"""Shared fixtures; GPU tests are skipped where CUDA is absent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(7)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test, restored afterwards: tiny networks and small FFT grids run faster without
    thread start-up (and much faster on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a pipeline TOML into tmp_path; the output folder defaults to tmp_path/out."""

    def write(text: str, name: str = "pipeline.toml") -> Path:
        path = tmp_path / name
        if "[run]" not in text:
            text = f'[run]\nseed = 1\noutput = "{tmp_path / "out"}"\n' + text
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def dask_scheduler() -> Iterator[str]:
    """The address of a Dask ``LocalCluster`` of 2 single-threaded worker processes, shared by the session's tests
    (it takes seconds to start); skips the test where dask.distributed is not installed."""
    pytest.importorskip("distributed")
    from cosmoseg.pipeline.executor import local_cluster

    with local_cluster(2) as cluster:
        yield cluster.scheduler_address
