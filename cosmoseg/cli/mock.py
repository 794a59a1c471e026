"""``cosmoseg mock``: a mock galaxy catalog from a user's snapshot, as a thin layer over the mock pipeline.

The pipeline is ``configs/mock.toml`` (:data:`MOCK_PIPELINE`, a test keeps the two equal): snapshot (``io.snapshot``)
→ haloes (FoF, ``sim.fof``; or the run's own group catalog, ``io.halos``) → galaxies (a population model,
``galaxies.population``; the galaxy model, ``galaxies.model``; or the Zheng07 HOD, ``galaxies.hod``) → the catalog
(``galaxies.catalog``) → its summary figure (``measure.mock_summary``). The command only edits that pipeline and
runs it in a staging folder that becomes the output folder when every stage has succeeded, so a failed mock leaves
nothing behind and never touches an existing output.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from cosmoseg.errors import ConfigError, CosmosegError

MOCK_PIPELINE = """\
# A mock galaxy catalog from a gravity-only run (docs/mock.md): snapshot -> FoF haloes -> centrals and satellites
# from the shipped population model -> the catalog (catalog.h5, layout in docs/mock.md) and a summary figure
# (summary/summary.png). `cosmoseg mock SNAPSHOT` runs this pipeline; so does
#   cosmoseg run configs/mock.toml --set run.files.snapshot=/path/to/snapdir_099
[run]
seed = 42
output = "runs/mock"
files = { snapshot = "" }   # the snapshot: a file, its first chunk, a stem or a snapdir folder

[[stage]]
id = "snapshot"
uses = "io.snapshot"         # dark matter (PartType1) in comoving Mpc/h, peculiar km/s
params = { path = "$snapshot" }

[[stage]]
id = "halos"
uses = "sim.fof"             # FoF haloes, b = 0.2, >= 20 particles, with the properties the samplers can use
inputs = { particles = "snapshot.particles" }
params = { b = 0.2, min_particles = 20, segmentation_min_particles = 20 }

[[stage]]
id = "galaxies"
uses = "galaxies.population" # centrals and satellites; params.model = a file of `cosmoseg galaxies train --satellites`
inputs = { halos = "halos.halos" }

[[stage]]
id = "catalog"
uses = "galaxies.catalog"    # the documented catalog: hosts, host mass, redshift-space positions along z
inputs = { galaxies = "galaxies.galaxies", halos = "halos.halos" }
params = { rsd_axis = 2 }

[[stage]]
id = "summary"
uses = "measure.mock_summary"  # halo and stellar mass functions, P(k) in real and redshift space, a slice
inputs = { catalog = "catalog.catalog", halos = "halos.halos" }
"""

GALAXY_CHOICES = ("flow", "hod", "model")
"""``--galaxies`` values other than a model file: the shipped population model, the Zheng07 HOD (paper
parameters; positions and velocities only), the project's galaxy model."""

AXES = {"x": 0, "y": 1, "z": 2, "none": -1}


def mock_config(
    snapshot: str,
    *,
    halos: str = "",
    galaxies: str = "flow",
    rsd_axis: str = "z",
    seed: int = 42,
) -> dict[str, Any]:
    """The raw mock pipeline (:data:`MOCK_PIPELINE`) for these command-line choices (paths absolute)."""
    raw = tomllib.loads(MOCK_PIPELINE)
    raw["run"]["seed"] = seed
    raw["run"]["files"] = {"snapshot": os.path.abspath(snapshot)}
    stages = {stage["id"]: stage for stage in raw["stage"]}
    if halos:
        raw["run"]["files"]["halos"] = os.path.abspath(halos)
        stages["halos"].update(
            uses="io.halos", inputs={"snapshot": "snapshot.particles"}, params={"path": "$halos", "kind": "groups"}
        )
    if galaxies == "model":
        stages["galaxies"]["uses"] = "galaxies.model"
    elif galaxies == "hod":
        stages["galaxies"]["uses"] = "galaxies.hod"
    elif galaxies != "flow":
        raw["run"]["files"]["galaxies"] = os.path.abspath(galaxies)
        stages["galaxies"]["params"] = {"model": "$galaxies"}
    if rsd_axis not in AXES:
        raise ConfigError(f"--rsd-axis must be one of {', '.join(AXES)}, got {rsd_axis!r}")
    stages["catalog"]["params"] = {"rsd_axis": AXES[rsd_axis]}
    return raw


def _staging(output: Path) -> Path:
    """A fresh name beside ``output`` for the run to write into (the runner makes the folder once the pipeline has
    checked out, so a mock refused before it runs leaves no folder)."""
    return output.parent / f".{output.name}.staging-{os.getpid()}-{secrets.token_hex(4)}"


def _publish(staging: Path, output: Path, overwrite: bool) -> None:
    """Move the finished staging folder onto ``output`` (an old output is removed only after the new one is there)."""
    if not output.exists() or (output.is_dir() and not any(output.iterdir())):
        os.replace(staging, output)  # onto nothing, or onto an empty folder (POSIX rename allows that)
        return
    if not overwrite:  # checked before running; another process made it meanwhile
        raise ConfigError(f"{output} was made by someone else while the mock ran; it is left as it is")
    old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
    os.replace(output, old / output.name)
    os.replace(staging, output)
    shutil.rmtree(old, ignore_errors=True)


def mock(
    snapshot: Annotated[
        Path, typer.Argument(help="The gravity-only snapshot: a file, its first chunk, a stem or a snapdir folder.")
    ],
    halos: Annotated[
        Path | None,
        typer.Option(
            help="The run's own FoF group catalog (fof_tab / fof_subhalo_tab) instead of FoF on the snapshot."
        ),
    ] = None,
    galaxies: Annotated[
        str,
        typer.Option(
            help="flow (the shipped population model), hod (Zheng07, no properties), model (the galaxy model), or a "
            "population model file from `cosmoseg galaxies train --satellites`."
        ),
    ] = "flow",
    rsd_axis: Annotated[
        str, typer.Option(help="Line of sight of the redshift-space positions: x, y, z or none.")
    ] = "z",
    output: Annotated[Path, typer.Option(help="Output folder (made when the mock succeeds).")] = Path("runs/mock"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output folder.")] = False,
    seed: Annotated[int, typer.Option(help="The run's seed.")] = 42,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Make a mock galaxy catalog from a snapshot: FoF haloes, centrals and satellites with their properties, the
    catalog (OUTPUT/catalog.h5) and a summary figure (OUTPUT/summary/summary.png)."""
    from cosmoseg.cli.app import err, fail, out
    from cosmoseg.data import load_artifact
    from cosmoseg.pipeline import SilentReporter, parse_config, run_pipeline
    from cosmoseg.pipeline.progress import RichReporter
    from cosmoseg.plugins import build_registry

    staging: Path | None = None
    try:
        if output.exists() and not output.is_dir():
            raise ConfigError(f"{output} exists and is not a folder")
        if output.exists() and any(output.iterdir()) and not overwrite:
            raise ConfigError(f"{output} exists and is not empty; pass --overwrite or another --output")
        choice = galaxies if galaxies in GALAXY_CHOICES else str(Path(galaxies))
        raw = mock_config(str(snapshot), halos=str(halos or ""), galaxies=choice, rsd_axis=rsd_axis, seed=seed)
        config = parse_config(raw, source="cosmoseg mock", base_dir=Path.cwd())
        registry = build_registry()
        staging = _staging(output)
        reporter = SilentReporter() if quiet else RichReporter(err)
        run_pipeline(config, registry=registry, device=device, reporter=reporter, output_dir=staging)
        _publish(staging, output, overwrite)
        staging = None
    except CosmosegError as error:
        fail(error)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    meta = load_artifact(output / "catalog.h5")["catalog"].meta
    out.print(
        f"mock: {meta['n_galaxies']} galaxies ({meta['n_centrals']} centrals, {meta['n_satellites']} satellites), "
        f"n = {meta['number_density']:.3g} (h/Mpc)^3 -> {output / 'catalog.h5'}; figure: "
        f"{output / 'summary' / 'summary.png'}"
    )
