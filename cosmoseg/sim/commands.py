"""The ``cosmoseg simulate`` command that ``cosmoseg.sim`` adds to the CLI (a thin layer over suites.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cosmoseg.pipeline.commands import (
    BoxesOption,
    DeviceOption,
    ExecutorOption,
    SchedulerOption,
    WorkersOption,
    executor_from_options,
    report_errors,
)


def simulate(
    suite: Annotated[Path, typer.Argument(help="Suite TOML file (see configs/suites/).")],
    output: Annotated[Path | None, typer.Option(help="Output folder (default: runs/suites/<suite name>).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Keep boxes already simulated with these settings.")] = False,
    boxes: BoxesOption = None,
    device: DeviceOption = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    executor: ExecutorOption = None,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
) -> None:
    """Generate a training suite: ICs, particle-mesh run and FoF haloes per box, one HDF5 file each (one task per
    box on a Dask cluster with --executor dask; a box whose worker dies is run again)."""
    from rich.console import Console

    from cosmoseg.pipeline import SilentReporter, resolve_device
    from cosmoseg.pipeline.executor import ExecutorConfig, open_executor
    from cosmoseg.pipeline.progress import RichReporter
    from cosmoseg.sim.suites import load_suite, simulate_suite

    reporter = SilentReporter() if quiet else RichReporter(Console(stderr=True, highlight=False, soft_wrap=True))
    with report_errors():
        chosen = executor_from_options(executor, scheduler, workers) or ExecutorConfig()
        config = load_suite(suite)
        folder = output or Path("runs") / "suites" / config.suite.name
        local = chosen.kind == "local"
        with open_executor(chosen) as tasks:
            if not local:
                reporter.log(f"boxes on {chosen.describe()}")
            paths = simulate_suite(
                config,
                folder.resolve(),
                resume=resume,
                boxes=parse_indices(boxes) if boxes else None,
                device=resolve_device(device),
                progress=(lambda items, description: reporter.track(items, total=None, description=description))
                if local
                else None,
                log=reporter.log,
                map_tasks=tasks.map,
            )
    typer.echo(f"{len(paths)} box file(s) in {folder}")


def parse_indices(text: str) -> list[int]:
    """``"0,3,5-7"`` -> [0, 3, 5, 6, 7]."""
    out: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            out.extend(range(int(low), int(high) + 1) if dash else [int(low)])
        except ValueError:
            raise ValueError(f"--boxes {text!r}: expected indices like 0,3,5-7") from None
    return out
