"""What a running stage gets from the runner: device, seeds, progress and logging."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from cosmoseg.pipeline.executor import TaskMap, local_map

T = TypeVar("T")


class ProgressReporter(Protocol):
    """Shows progress; the runner passes a rich one, tests a silent one."""

    def track(self, iterable: Iterable[T], *, total: int | None, description: str) -> Iterator[T]: ...

    def log(self, message: str) -> None: ...


class SilentReporter:
    """Shows nothing; keeps the log lines in ``messages``."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def track(self, iterable: Iterable[T], *, total: int | None, description: str) -> Iterator[T]:
        yield from iterable

    def log(self, message: str) -> None:
        self.messages.append(message)


def spawn_seed(*entropy: int) -> int:
    """A 63-bit seed from non-negative integers (``np.random.SeedSequence(entropy)``, its first 64-bit word shifted
    right by one): independent seeds for e.g. (seed, block index) pairs, stable across runs, processes and machines."""
    if any(e < 0 for e in entropy):
        raise ValueError(f"seeds are built from non-negative integers, got {entropy}")
    return int(np.random.SeedSequence(list(entropy)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def derive_seed(run_seed: int, stage_id: str) -> int:
    """A stage's seed: a 63-bit integer from the run's seed and the stage id (stable across runs)."""
    return spawn_seed(run_seed, zlib.crc32(stage_id.encode()))


@dataclasses.dataclass
class RunContext:
    """Handed to every stage as ``self.ctx``.

    device: where the stage should compute (its inputs are already there).
    seed: the stage's own seed (from the run seed and the stage id).
    stage_id: the id of the stage in the pipeline.
    work_dir: a folder the stage may use for scratch files (inside the run's output folder).
    map_tasks: runs independent tasks (chunks, tiles, boxes) where the run's executor says (``[run] executor``):
        ``map_tasks(function, items)`` yields ``(index, result)`` as tasks finish; hand it to the library call that
        cuts the work, e.g. ``populate_chunked(..., map_tasks=self.ctx.map_tasks)``. In this process by default.
    """

    device: torch.device
    seed: int
    stage_id: str = "stage"
    work_dir: Path | None = None
    reporter: Any = dataclasses.field(default_factory=SilentReporter)
    map_tasks: TaskMap = local_map

    @cached_property
    def generator(self) -> torch.Generator:
        """A torch generator on ``device`` seeded with the stage's seed."""
        return self.make_generator(self.device)

    def make_generator(self, device: torch.device | str = "cpu", offset: int = 0) -> torch.Generator:
        """A fresh generator on ``device`` seeded from the stage's seed (+ ``offset`` for separate streams)."""
        generator = torch.Generator(device=torch.device(device))
        generator.manual_seed((self.seed + offset) % (2**63))
        return generator

    def numpy_rng(self, offset: int = 0) -> np.random.Generator:
        """A NumPy generator seeded from the stage's seed (+ ``offset``)."""
        return np.random.default_rng([self.seed, offset])

    def progress(self, iterable: Iterable[T], *, total: int | None = None, description: str = "") -> Iterator[T]:
        """Iterate while showing progress: ``for step in ctx.progress(range(n), description="PM")``."""
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        return self.reporter.track(iterable, total=total, description=description or self.stage_id)

    def log(self, message: str) -> None:
        """A line for the user (shown under the progress bars, kept in the run's log)."""
        self.reporter.log(f"[{self.stage_id}] {message}")
