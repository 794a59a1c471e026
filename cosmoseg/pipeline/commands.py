"""The kit of the science command groups (``cosmoseg protohalo|galaxies|paint ...``, ``cosmoseg simulate``): one way
to report errors, shared options, and the invocation a model card records.

- :func:`report_errors`: a ``with`` block that turns a cosmoseg error (or ValueError, or an operating-system error)
  into ``error:`` and one problem per line on standard error, exit status 1 — as ``cosmoseg run`` does.
- :data:`DeviceOption`, :data:`SeedOption`, :data:`NValidationOption`, :data:`NTestOption`: the options every
  trainer and evaluator shares, with one help text each.
- :data:`ExecutorOption`, :data:`SchedulerOption`, :data:`WorkersOption` and :func:`executor_from_options`: where
  tasks run (``--executor dask --scheduler tcp://host:8786`` or ``--executor dask --workers 4``), over a
  pipeline's ``[run]`` choice.
- :func:`invocation`: the command line as it was parsed (``cosmoseg galaxies train suites/galaxies --method flow``),
  for model cards, instead of a command rebuilt by hand.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator
from typing import Annotated

import typer

from cosmoseg.errors import CosmosegError
from cosmoseg.pipeline.executor import ExecutorConfig, executor_config

__all__ = [
    "BoxesOption",
    "DeviceOption",
    "ExecutorOption",
    "NTestOption",
    "NValidationOption",
    "SchedulerOption",
    "SeedOption",
    "WorkersOption",
    "error_lines",
    "executor_from_options",
    "invocation",
    "report_errors",
]

DeviceOption = Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N or mps.")]
SeedOption = Annotated[int, typer.Option(help="Seed of the split of the suite into boxes, and of the fit or draws.")]
NValidationOption = Annotated[int, typer.Option(help="Whole boxes held out for validation (model selection).")]
NTestOption = Annotated[int, typer.Option(help="Whole boxes held out for the test (never seen in training).")]
BoxesOption = Annotated[str | None, typer.Option(help="Only these box indices, e.g. 0,3,5-7.")]
ExecutorOption = Annotated[
    str | None,
    typer.Option(
        help="Where tasks run: local (this process) or dask (with --scheduler or --workers; needs the extra: "
        'pip install "cosmoseg\\[dask]").'
    ),
]
SchedulerOption = Annotated[
    str | None, typer.Option(help="Address of a running Dask scheduler, e.g. tcp://host:8786 (--executor dask).")
]
WorkersOption = Annotated[
    int | None, typer.Option(help="Start a Dask LocalCluster of N single-threaded worker processes (--executor dask).")
]


def executor_from_options(
    executor: str | None, scheduler: str | None, workers: int | None, base: ExecutorConfig | None = None
) -> ExecutorConfig | None:
    """The executor the ``--executor/--scheduler/--workers`` options choose over ``base`` (a pipeline's ``[run]``
    choice, or local): None when no option was given; ``--scheduler`` or ``--workers`` replace both of ``base``'s.
    ConfigError for a choice that does not hold (unknown executor, dask without an address or workers, ...)."""
    if executor is None and scheduler is None and workers is None:
        return None
    base = base or ExecutorConfig()
    if scheduler is not None or workers is not None:
        scheduler, workers = scheduler or "", workers or 0
    else:
        scheduler, workers = base.scheduler, base.workers
    return executor_config(
        executor or base.kind, scheduler=scheduler, workers=workers, retries=base.retries, where="--executor"
    )


def error_lines(error: BaseException) -> list[str]:
    """The lines that report an error: ``error:`` and its one problem, or ``error: <context>:`` and one problem per
    line (a cosmoseg error keeps its problems apart; an operating-system error names its path)."""
    if isinstance(error, CosmosegError):
        text = str(error)
    elif isinstance(error, OSError) and error.filename:
        text = f"{error.filename}: {error.strerror or error}"
    else:
        text = str(error)
    lines = text.splitlines() or [type(error).__name__]
    return [f"error: {lines[0]}", *lines[1:]]


@contextlib.contextmanager
def report_errors() -> Iterator[None]:
    """Report a cosmoseg error, ValueError or OSError raised in the block as :func:`error_lines` on standard error
    and exit with status 1; anything else propagates (a bug shows its traceback)."""
    try:
        yield
    except (CosmosegError, ValueError, OSError) as error:
        for line in error_lines(error):
            typer.echo(line, err=True)
        raise typer.Exit(1) from None


def invocation(ctx: typer.Context) -> str:
    """The running command as it was parsed, quoted for a shell: ``cosmoseg galaxies train suites/galaxies --method
    flow --seed 0 ...``, every option with its value, defaults included, so that a model card's command is the one
    that ran and reruns it. ``ctx``: the command's ``typer.Context`` (declare a ``ctx: typer.Context`` parameter)."""
    words = ["cosmoseg", *ctx.command_path.split()[1:]]
    for option in ctx.command.params:
        value = ctx.params.get(option.name or "")
        if value is None or (isinstance(value, list | tuple) and not value):
            continue
        values = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
        if option.param_type_name == "argument":
            words += values
            continue
        longest = sorted(option.opts, key=len, reverse=True)[0]
        if getattr(option, "is_flag", False):
            if value is True:
                words.append(longest)
            elif option.secondary_opts:
                words.append(sorted(option.secondary_opts, key=len, reverse=True)[0])
            continue
        for item in values:
            words += [longest, item]
    return shlex.join(words)
