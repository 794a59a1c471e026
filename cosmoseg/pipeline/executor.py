"""How work is spread: in this process ("local") or over a Dask cluster ("dask"), chosen here and nowhere else.

The choice is an :class:`ExecutorConfig`: ``[run] executor``, ``scheduler`` and ``workers`` of a pipeline, or the
``--executor``, ``--scheduler`` and ``--workers`` options of ``cosmoseg run`` and ``cosmoseg simulate``.
:func:`open_executor` turns it into an :class:`Executor`, whose :meth:`~Executor.map` runs a function over
independent items (boxes of a suite, chunks of a halo catalog) and yields ``(index, result)`` as tasks finish. Science
code only ever sees such a ``map`` (a :data:`TaskMap`): it cuts its work into boxes or chunks, never talks to a
scheduler. This module is the only one that imports ``distributed`` (inside functions, so ``cosmoseg --help`` stays
fast and Dask stays an optional extra: ``pip install "cosmoseg[dask]"``).

On Dask each item is one task, submitted with ``retries`` (a task that raises is run again up to that many times);
a task whose worker dies is handed to another worker by the scheduler (``distributed.scheduler.allowed-failures``,
3 by default). At most two tasks per worker are in flight at a time: the next item is taken from the sequence (and
sent) only when a task finishes, so a :class:`LazySequence` of large items (the tiles of a box) is never all in the
caller's memory at once. Functions and items travel by pickle, so they must be module-level functions
(``functools.partial`` of them is fine) and picklable values; the workers must see the same files as the caller (a
shared file system).
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, Protocol, TypeVar

from cosmoseg.errors import ConfigError

__all__ = [
    "DASK_INSTALL",
    "EXECUTORS",
    "Executor",
    "ExecutorConfig",
    "LazyExecutor",
    "LazySequence",
    "LocalExecutor",
    "TaskMap",
    "executor_config",
    "local_cluster",
    "local_map",
    "open_executor",
    "run_in_order",
]

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "dask")
"""The executors: ``local`` runs tasks one after another in this process; ``dask`` on a Dask cluster."""

DASK_INSTALL = 'pip install "cosmoseg[dask]"'
"""How to get the Dask extra (dask.distributed)."""

IN_FLIGHT_PER_WORKER = 2
"""Dask tasks in flight per worker (one running, one waiting): more items are sent as tasks finish."""

DEFAULT_RETRIES = 2
"""Times a Dask task that raised is run again before the error reaches the caller."""


class TaskMap(Protocol):
    """``map(function, items)``: runs ``function`` on every item and yields ``(index of the item, result)`` as the
    tasks finish (any order on a cluster, item order locally). What science code gets instead of a scheduler."""

    def __call__(self, function: Callable[[Any], Any], items: Sequence[Any], /) -> Iterator[tuple[int, Any]]: ...


class LazySequence(Sequence[T]):
    """``count`` items made on demand by ``make(index)``, e.g. the input of each tile of a box cut when its task is
    sent rather than all at once. Items are not cached: each access makes the item again."""

    def __init__(self, make: Callable[[int], T], count: int) -> None:
        self._make, self._count = make, int(count)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> T:  # type: ignore[override]
        if not -self._count <= index < self._count:
            raise IndexError(f"item {index} of {self._count}")
        return self._make(index % self._count)


def local_map(function: Callable[[T], R], items: Sequence[T], /) -> Iterator[tuple[int, R]]:
    """The :data:`TaskMap` of one process: the items one after another, in order."""
    for index, item in enumerate(items):
        yield index, function(item)


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
    """Where tasks run.

    kind: "local" (this process) or "dask".
    scheduler: address of a running Dask scheduler ("tcp://host:8786"), for kind "dask".
    workers: size of a Dask ``LocalCluster`` started for the run (processes of one thread each), for kind "dask"
        when no scheduler is given. Exactly one of scheduler and workers goes with "dask"; neither with "local".
    retries: times a Dask task that raised is run again.
    """

    kind: Literal["local", "dask"] = "local"
    scheduler: str = ""
    workers: int = 0
    retries: int = DEFAULT_RETRIES

    def problems(self) -> list[str]:
        """What is wrong with this choice, one line each (empty when it is valid)."""
        out = []
        if self.kind not in EXECUTORS:
            return [f"executor must be one of {', '.join(repr(k) for k in EXECUTORS)}, got {self.kind!r}"]
        if not isinstance(self.scheduler, str):
            out.append(f'scheduler must be an address string such as "tcp://host:8786", got {self.scheduler!r}')
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            out.append(f"workers must be an integer >= 1, got {self.workers!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            out.append(f"retries must be an integer >= 0, got {self.retries!r}")
        if out:
            return out
        if self.kind == "local" and (self.scheduler or self.workers):
            given = "scheduler" if self.scheduler else "workers"
            out.append(f'{given} is for executor "dask"; the executor is "local" (set executor = "dask")')
        if self.kind == "dask" and not self.scheduler and not self.workers:
            out.append(
                'executor "dask" needs a scheduler address (scheduler = "tcp://host:8786", --scheduler) or the size '
                "of a local cluster (workers = N, --workers N)"
            )
        if self.kind == "dask" and self.scheduler and self.workers:
            out.append('executor "dask" takes a scheduler address or a number of workers, not both')
        return out

    def describe(self) -> str:
        """One line: "local", "dask at tcp://host:8786" or "dask, local cluster of 4 workers"."""
        if self.kind == "local":
            return "local"
        return f"dask at {self.scheduler}" if self.scheduler else f"dask, local cluster of {self.workers} workers"


def executor_config(
    kind: str = "local", *, scheduler: str = "", workers: int = 0, retries: int = DEFAULT_RETRIES, where: str = ""
) -> ExecutorConfig:
    """A checked :class:`ExecutorConfig`; ``ConfigError`` (in context ``where``) listing every problem."""
    config = ExecutorConfig(kind=kind, scheduler=scheduler, workers=workers, retries=retries)  # type: ignore[arg-type]
    problems = config.problems()
    if problems:
        raise ConfigError(problems, context=where or None)
    return config


class Executor(Protocol):
    """Runs tasks; :meth:`map` is a :data:`TaskMap`."""

    config: ExecutorConfig

    def map(self, function: Callable[[T], R], items: Sequence[T], /) -> Iterator[tuple[int, R]]: ...


class LocalExecutor:
    """Tasks one after another in this process."""

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        self.config = config or ExecutorConfig()

    def map(self, function: Callable[[T], R], items: Sequence[T], /) -> Iterator[tuple[int, R]]:
        return local_map(function, items)


class DaskExecutor:
    """Tasks on a Dask cluster through a ``distributed.Client``: one task per item, with retries."""

    def __init__(self, client: Any, config: ExecutorConfig) -> None:
        self.client, self.config = client, config

    def map(self, function: Callable[[T], R], items: Sequence[T], /) -> Iterator[tuple[int, R]]:
        from distributed import as_completed

        name = getattr(function, "__name__", None) or getattr(getattr(function, "func", None), "__name__", "task")
        batch = uuid.uuid4().hex[:8]
        workers = len(self.client.scheduler_info().get("workers", {}))
        window = IN_FLIGHT_PER_WORKER * max(workers, 1)
        running: dict[str, tuple[int, Any]] = {}
        finished = as_completed()

        def submit(i: int) -> None:
            key = f"{name}-{batch}-{i}"
            future = self.client.submit(function, items[i], key=key, retries=self.config.retries, pure=False)
            running[future.key] = (i, future)
            finished.add(future)

        sent = min(window, len(items))
        for i in range(sent):
            submit(i)
        try:
            for future in finished:
                result = future.result()
                i, _ = running.pop(future.key)
                future.release()
                if sent < len(items):
                    submit(sent)
                    sent += 1
                yield i, result
        finally:
            for _, future in running.values():
                future.release()


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as err:
        raise ConfigError(f'executor "dask" needs dask.distributed, which is not installed: {DASK_INSTALL}') from err
    return distributed


NANNY_ENVIRON_UNSET = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
"""Dask config that keeps Dask's nanny from setting ``MALLOC_TRIM_THRESHOLD_`` in its workers: any explicit value
turns off glibc's adaptive mmap threshold, and a particle-mesh box then takes 2.2x as long (measured on the tiny
suite's boxes, 0.75 s -> 1.61 s). The same in a Dask config file for workers you start yourself:
``distributed: {nanny: {pre-spawn-environ: {MALLOC_TRIM_THRESHOLD_: null}}}``."""


def local_cluster(workers: int) -> Any:
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes (``OMP_NUM_THREADS=1``,
    glibc's malloc left adaptive: :data:`NANNY_ENVIRON_UNSET`), its dashboard on a free port; a context manager."""
    distributed = _import_distributed()
    import dask

    with dask.config.set(NANNY_ENVIRON_UNSET):
        return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")


@contextlib.contextmanager
def open_executor(config: ExecutorConfig) -> Iterator[Executor]:
    """The executor of ``config`` for the ``with`` block: for "dask", a client of the scheduler at
    ``config.scheduler`` or of a ``LocalCluster`` of ``config.workers`` single-threaded worker processes, started
    here and shut down at the end of the block. ``ConfigError`` for an invalid config or a missing Dask."""
    problems = config.problems()
    if problems:
        raise ConfigError(problems, context="executor")
    if config.kind == "local":
        yield LocalExecutor(config)
        return
    distributed = _import_distributed()
    with contextlib.ExitStack() as stack:
        if config.scheduler:
            try:
                client = stack.enter_context(distributed.Client(config.scheduler, timeout="30s"))
            except OSError as err:
                raise ConfigError(f"cannot reach the Dask scheduler at {config.scheduler}: {err}") from err
        else:
            cluster = stack.enter_context(local_cluster(config.workers))
            client = stack.enter_context(distributed.Client(cluster))
        yield DaskExecutor(client, config)


class LazyExecutor:
    """An executor opened on first use (a run whose stages never spread work starts no cluster) and closed by
    :meth:`close`; what the runner hands its stages as ``ctx.map_tasks``."""

    def __init__(self, config: ExecutorConfig, log: Callable[[str], None] = lambda message: None) -> None:
        self.config, self.log = config, log
        self._stack = contextlib.ExitStack()
        self._executor: Executor | None = None

    def map(self, function: Callable[[T], R], items: Sequence[T], /) -> Iterator[tuple[int, R]]:
        if self._executor is None:
            if self.config.kind != "local":
                self.log(f"starting the executor: {self.config.describe()}")
            self._executor = self._stack.enter_context(open_executor(self.config))
        return self._executor.map(function, items)

    def close(self) -> None:
        self._stack.close()
        self._executor = None

    def __enter__(self) -> LazyExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_in_order(map_tasks: TaskMap, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """Every result of ``map_tasks(function, items)``, in the order of ``items``."""
    results: dict[int, R] = dict(map_tasks(function, items))
    return [results[i] for i in range(len(items))]
