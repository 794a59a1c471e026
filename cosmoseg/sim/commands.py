"""The ``cosmoseg simulate`` command that ``cosmoseg.sim`` adds to the CLI (a thin layer over suites.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cosmoseg.pipeline.commands import BoxesOption, DeviceOption, report_errors


def simulate(
    suite: Annotated[Path, typer.Argument(help="Suite TOML file (see configs/suites/).")],
    output: Annotated[Path | None, typer.Option(help="Output folder (default: runs/suites/<suite name>).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Keep boxes already simulated with these settings.")] = False,
    boxes: BoxesOption = None,
    device: DeviceOption = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Generate a training suite: ICs, particle-mesh run and FoF haloes per box, one HDF5 file each."""
    from rich.console import Console

    from cosmoseg.pipeline import SilentReporter, resolve_device
    from cosmoseg.pipeline.progress import RichReporter
    from cosmoseg.sim.suites import load_suite, simulate_suite

    reporter = SilentReporter() if quiet else RichReporter(Console(stderr=True, highlight=False, soft_wrap=True))
    with report_errors():
        config = load_suite(suite)
        folder = output or Path("runs") / "suites" / config.suite.name
        paths = simulate_suite(
            config,
            folder,
            resume=resume,
            boxes=parse_indices(boxes) if boxes else None,
            device=resolve_device(device),
            progress=lambda items, description: reporter.track(items, total=None, description=description),
            log=reporter.log,
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
