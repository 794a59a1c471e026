"""Training suites: N boxes from one TOML description, each simulated into its own HDF5 file.

A suite file (``configs/suites/*.toml``) has these tables, every key optional but ``[suite] n_boxes``:

```toml
[suite]      # name, n_boxes, seed, twins (a pair of sub-resolution twins per box), save_particles
[grid]       # n (particles per side), box (Mpc/h)
[ics]        # z_start, lpt_order, precision
[nbody]      # steps, mesh_factor, spacing, output_redshifts (earlier snapshots, for formation redshifts)
[halos]      # b, min_particles, segmentation_min_particles
[cosmology]  # fixed Cosmology fields (Planck 2018 otherwise)
[latin_hypercube]   # parameter = [low, high]: a Latin hypercube over these, one point per box
```

Box i gets the seed ``SeedSequence([suite seed, i])`` and, with a Latin hypercube, the i-th point of a
hypercube drawn from the suite seed, so every box can be regenerated alone. Its file ``box_<i>.h5`` holds
``fields`` (δ, φ on the Lagrangian grid, linear at z = 0), ``halos`` and ``segmentation`` at z = 0
(twins: ``particles``/``halos``/``segmentation`` with suffixes ``_a`` and ``_b``), ``halos_z<z>`` at the
earlier snapshots, and optionally the z = 0 ``particles``; its attributes record the box's seed,
cosmology and the suite fingerprint that ``resume`` compares.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from cosmoseg.data import Cosmology, DataObject, HaloCatalog, Particles, open_artifact, save_artifact
from cosmoseg.data.hdf5 import atomic_write
from cosmoseg.errors import ArtifactError, ConfigError, ValidationError
from cosmoseg.pipeline.executor import TaskMap, local_map
from cosmoseg.pipeline.params import param, parse_params
from cosmoseg.sim.fof import (
    find_halos,
    lagrangian_segmentation,
)
from cosmoseg.sim.halo_properties import formation_redshifts
from cosmoseg.sim.ics import initial_conditions, sub_resolution_twins
from cosmoseg.sim.nbody import run_pm

T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterator[T]]
"""progress(iterable, description) -> iterator: shows progress while iterating."""


@dataclasses.dataclass(frozen=True)
class SuiteSection:
    name: str = param("suite", doc="the suite's name (its default folder: runs/suites/<name>)")
    n_boxes: int = param(1, ge=1, doc="boxes in the suite")
    seed: int = param(0, ge=0, doc="seed of the boxes' seeds and of the Latin hypercube")
    twins: bool = param(False, doc="a pair of sub-resolution twins per box")
    small_scale_seeds: tuple[int, int] = param((1, 2), doc="the twins' seeds of the small scales (they must differ)")
    save_particles: bool = param(False, doc="keep the z = 0 particles in the box files")

    def problems(self) -> list[str]:
        if self.twins and self.small_scale_seeds[0] == self.small_scale_seeds[1]:
            return [f"param 'small_scale_seeds' must be two different seeds, got {list(self.small_scale_seeds)}"]
        return []


@dataclasses.dataclass(frozen=True)
class GridSection:
    n: int = param(64, ge=2, doc="particles per side (even)")
    box: float = param(50.0, gt=0, doc="side length, Mpc/h")

    def problems(self) -> list[str]:
        return [f"param 'n' must be an even integer >= 2, got {self.n}"] if self.n % 2 else []


@dataclasses.dataclass(frozen=True)
class IcsSection:
    z_start: float = param(49.0, gt=0, doc="starting redshift")
    lpt_order: int = param(2, ge=1, le=2, doc="1 (Zel'dovich) or 2 (2LPT)")
    precision: Literal["float32", "float64"] = "float32"


@dataclasses.dataclass(frozen=True)
class NbodySection:
    steps: int = param(20, ge=1, doc="kick-drift-kick steps to z = 0")
    mesh_factor: int = param(2, ge=1, doc="force-mesh cells per particle-grid cell along each axis")
    spacing: Literal["a", "loga"] = "a"
    output_redshifts: tuple[float, ...] = param((), gt=0, doc="earlier snapshots, for formation redshifts")


@dataclasses.dataclass(frozen=True)
class HalosSection:
    b: float = param(0.2, gt=0, lt=1, doc="FoF linking length over the mean interparticle separation")
    min_particles: int = param(20, ge=2, doc="smallest halo in the catalogs")
    segmentation_min_particles: int = param(155, doc="smallest halo in the Lagrangian labels (>= min_particles)")

    def problems(self) -> list[str]:
        if self.segmentation_min_particles < self.min_particles:
            return [
                f"param 'segmentation_min_particles' ({self.segmentation_min_particles}) must be >= "
                f"'min_particles' ({self.min_particles})"
            ]
        return []


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    """A parsed suite file (see the module docstring)."""

    suite: SuiteSection
    grid: GridSection
    ics: IcsSection
    nbody: NbodySection
    halos: HalosSection
    cosmology: dict[str, Any]
    latin_hypercube: dict[str, tuple[float, float]]
    source: str = "<suite>"

    def fingerprint(self) -> str:
        """A hash of everything that decides a box's contents."""
        payload = {k: v for k, v in dataclasses.asdict(self).items() if k != "source"}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()

    def box_seed(self, index: int) -> int:
        return int(np.random.SeedSequence([self.suite.seed, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))

    def box_cosmology(self, index: int) -> Cosmology:
        """The cosmology of box ``index``: the fixed values, then its Latin-hypercube point."""
        changes = dict(self.cosmology)
        if self.latin_hypercube:
            from scipy.stats import qmc

            names = sorted(self.latin_hypercube)
            unit = qmc.LatinHypercube(d=len(names), seed=self.suite.seed).random(self.suite.n_boxes)[index]
            for name, u in zip(names, unit, strict=True):
                low, high = self.latin_hypercube[name]
                changes[name] = float(low + u * (high - low))
        return Cosmology(**changes)


SECTIONS = {"suite": SuiteSection, "grid": GridSection, "ics": IcsSection, "nbody": NbodySection, "halos": HalosSection}


def parse_suite(raw: dict[str, Any], source: str = "<suite>") -> SuiteConfig:
    """Check a raw suite table and build a SuiteConfig; every problem is reported at once."""
    problems: list[str] = []
    known = {*SECTIONS, "cosmology", "latin_hypercube"}
    problems += [f"unknown table [{key}] (known: {', '.join(sorted(known))})" for key in sorted(set(raw) - known)]
    sections: dict[str, Any] = {}
    for key, cls in SECTIONS.items():
        table = raw.get(key, {})
        if not isinstance(table, dict):
            problems.append(f"[{key}] must be a table")
            table = {}
        parsed, found = parse_params(cls, table, f"[{key}]")
        problems += found
        sections[key] = parsed
    cosmology = raw.get("cosmology", {})
    hypercube = raw.get("latin_hypercube", {})
    field_names = {f.name for f in dataclasses.fields(Cosmology)}
    for name in sorted((set(cosmology) | set(hypercube)) - field_names):
        problems.append(f"[cosmology]/[latin_hypercube]: {name!r} is not a Cosmology field")
    ranges: dict[str, tuple[float, float]] = {}
    for name, bounds in hypercube.items():
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, int | float) for b in bounds)):
            problems.append(f"[latin_hypercube]: {name} must be [low, high], got {bounds!r}")
        elif not bounds[0] < bounds[1]:
            problems.append(f"[latin_hypercube]: {name} needs low < high, got {bounds}")
        else:
            ranges[name] = (float(bounds[0]), float(bounds[1]))
    if not problems:
        try:
            Cosmology(**cosmology)
        except (ValueError, TypeError) as err:
            problems += [f"[cosmology]: {p}" for p in getattr(err, "problems", [str(err)])]
    if problems:
        raise ConfigError(problems, context=source)
    return SuiteConfig(**sections, cosmology=dict(cosmology), latin_hypercube=ranges, source=source)


def load_suite(path: str | Path) -> SuiteConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such suite file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    return parse_suite(raw, str(path))


def _evolve(
    config: SuiteConfig, particles: Particles, device: torch.device, progress: Progress | None
) -> list[Particles]:
    track = None
    if progress is not None:

        def track(steps: Iterable[int]) -> Iterator[int]:
            return progress(steps, "PM steps")

    return run_pm(
        particles,
        z_final=0.0,
        steps=config.nbody.steps,
        mesh_factor=config.nbody.mesh_factor,
        spacing=config.nbody.spacing,
        output_redshifts=[z for z in config.nbody.output_redshifts if z > 0],
        progress=track,
        device=device,
    )


def _halos_of_run(config: SuiteConfig, snapshots: list[Particles], suffix: str) -> dict[str, DataObject]:
    """z = 0 haloes (with formation redshifts when earlier snapshots exist), their segmentation, and the
    haloes of the earlier snapshots."""
    final = snapshots[-1]
    h = config.halos
    halos, labels = find_halos(final, b=h.b, min_particles=h.min_particles)
    out: dict[str, DataObject] = {}
    earlier = []
    for snap in snapshots[:-1]:
        snap_halos, snap_labels = find_halos(snap, b=h.b, min_particles=h.min_particles)
        earlier.append((snap.box.redshift, snap_labels))
        out[f"halos_z{snap.box.redshift:.2f}{suffix}"] = snap_halos
    if earlier and len(halos):
        z_form = formation_redshifts(labels, earlier, redshift=0.0)
        halos = halos.with_columns(formation_redshift=z_form.to(halos["mass"].dtype))
    out[f"halos{suffix}"] = halos
    out[f"segmentation{suffix}"] = lagrangian_segmentation(labels, final, min_particles=h.segmentation_min_particles)
    if config.suite.save_particles:
        out[f"particles{suffix}"] = final
    return out


def simulate_box(
    config: SuiteConfig, index: int, *, device: torch.device | str = "cpu", progress: Progress | None = None
) -> dict[str, DataObject]:
    """Everything box ``index`` of the suite holds: ICs, PM run(s), FoF haloes and Lagrangian labels."""
    device = torch.device(device)
    cosmology = config.box_cosmology(index)
    seed = config.box_seed(index)
    grid, ics = config.grid, config.ics
    common = {"n": grid.n, "length": grid.box, "seed": seed, "z_start": ics.z_start, "lpt_order": ics.lpt_order}
    dtype = getattr(torch, ics.precision)
    if config.suite.twins:
        pair = sub_resolution_twins(
            cosmology, **common, small_scale_seeds=config.suite.small_scale_seeds, device=device, dtype=dtype
        )
        out: dict[str, DataObject] = {"fields": pair[0].fields}
        for twin, suffix in zip(pair, ("_a", "_b"), strict=True):
            out |= _halos_of_run(config, _evolve(config, twin.particles, device, progress), suffix)
        return out
    start = initial_conditions(cosmology, **common, device=device, dtype=dtype)
    return {"fields": start.fields, **_halos_of_run(config, _evolve(config, start.particles, device, progress), "")}


def box_path(output_dir: Path, index: int) -> Path:
    return output_dir / f"box_{index:04d}.h5"


def find_boxes(suite_dir: str | os.PathLike[str]) -> list[Path]:
    """The ``box_*.h5`` files of a suite folder, sorted; `ValidationError` when there is none."""
    folder = Path(suite_dir)
    if not folder.is_dir():
        raise ValidationError(f"{folder}: no such suite folder")
    paths = sorted(folder.glob("box_*.h5"))
    if not paths:
        raise ValidationError(f"{folder}: no box_*.h5 files (make a suite with `cosmoseg simulate SUITE.toml`)")
    return paths


def box_index(path: str | os.PathLike[str]) -> int:
    """The index of a suite box from its file name (``box_0007.h5`` -> 7; 0 for a name without one): the truth of
    a box (its galaxies) is seeded by it."""
    tail = Path(path).stem.split("_")[-1]
    return int(tail) if tail.isdigit() else 0


@dataclasses.dataclass(frozen=True)
class SuiteSplit:
    """Indices of a suite's boxes (into the list the split was made from) by role, each sorted."""

    train: list[int]
    validation: list[int]
    test: list[int]

    def pick(self, items: Sequence[T], role: str) -> list[T]:
        """The ``items`` (a list of boxes, paths, ...) of one role."""
        return [items[i] for i in getattr(self, role)]


def split_suite(n_boxes: int, n_validation: int, n_test: int = 0, *, seed: int, allow_all: bool = False) -> SuiteSplit:
    """The one split of a suite into whole training, validation and test boxes, used by every trainer.

    One seeded permutation (``numpy.random.default_rng(seed)``) of the ``n_boxes`` indices: its first ``n_test``
    entries are the test boxes, the next ``n_validation`` the validation boxes, the rest train. ``allow_all``
    (scoring a fitted model on a new suite) lets the held-out boxes take every box; otherwise at least one box is
    left to train on. ValidationError for counts that do not fit.
    """
    held_out = n_validation + n_test
    top = n_boxes if allow_all else n_boxes - 1
    if n_validation < 0 or n_test < 0 or held_out > top:
        raise ValidationError(
            f"{n_boxes} box(es) cannot give {n_validation} validation and {n_test} test box(es)"
            + ("" if allow_all else " and still leave one to train on")
        )
    order = [int(i) for i in np.random.default_rng(seed).permutation(n_boxes)]
    return SuiteSplit(
        train=sorted(order[held_out:]), validation=sorted(order[n_test:held_out]), test=sorted(order[:n_test])
    )


def box_is_done(path: Path, fingerprint: str, key: str = "suite_fingerprint") -> bool:
    """Whether ``path`` is a whole artifact file whose attribute ``key`` is ``fingerprint``: a box written for this
    suite, or a per-box product (galaxies, halo catalogs) written with these settings, for ``--resume``."""
    if not path.is_file():
        return False
    try:
        with open_artifact(path) as f:
            return f.attrs.get(key) == fingerprint
    except ArtifactError:
        return False


def simulate_suite(
    config: SuiteConfig,
    output_dir: str | Path,
    *,
    resume: bool = False,
    boxes: Iterable[int] | None = None,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda message: None,
    map_tasks: TaskMap = local_map,
) -> list[Path]:
    """Simulate the suite's boxes (all, or ``boxes``) into ``output_dir``; returns the box files.

    resume: keep a box whose file is whole and was written for the same suite settings. Every file is
    written atomically, so an interrupted suite loses at most the boxes in progress. ``suite.json`` records
    the settings and each box's seed and cosmology.
    map_tasks: runs the boxes, one task each (:func:`simulate_box` and the write of its file): in this process by
    default, or on a cluster (``cosmoseg.pipeline.executor``; the workers must see ``output_dir``). A box is the
    same whichever process makes it. ``progress`` runs inside the tasks: leave it None when they run elsewhere.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = config.fingerprint()
    indices = list(range(config.suite.n_boxes)) if boxes is None else list(boxes)
    bad = [i for i in indices if not 0 <= i < config.suite.n_boxes]
    if bad:
        raise ConfigError(f"box indices {bad} are outside 0..{config.suite.n_boxes - 1}", context=config.source)
    summary = {
        "suite": config.source,
        "fingerprint": fingerprint,
        "settings": {k: v for k, v in dataclasses.asdict(config).items() if k != "source"},
        "boxes": {
            f"{i:04d}": {"seed": config.box_seed(i), "cosmology": config.box_cosmology(i).to_dict()}
            for i in range(config.suite.n_boxes)
        },
    }
    text = json.dumps(summary, indent=2, default=list)
    atomic_write(out / "suite.json", lambda tmp: tmp.write_text(text + "\n"), suffix=".json")
    paths, todo = [], []
    for index in indices:
        path = box_path(out, index)
        paths.append(path)
        if resume and box_is_done(path, fingerprint):
            log(f"box {index}: done already, skipped (--resume)")
        else:
            todo.append(index)
    task = functools.partial(write_box, config, out, device=torch.device(device), progress=progress)
    for _, (index, n_halos) in map_tasks(task, todo):
        log(f"box {index}: {n_halos} haloes -> {box_path(out, index)}")
    return paths


def write_box(
    config: SuiteConfig,
    output_dir: Path,
    index: int,
    *,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Simulate box ``index`` and write it atomically to ``output_dir/box_<index>.h5`` (attributes: the suite's name
    and fingerprint, the box's index, seed and cosmology); returns ``(index, number of z = 0 haloes)``. One task of
    :func:`simulate_suite`."""
    objects = simulate_box(config, index, device=device, progress=progress)
    cosmology = config.box_cosmology(index)
    attrs = {
        "suite": config.suite.name,
        "suite_fingerprint": config.fingerprint(),
        "box_index": index,
        "box_seed": config.box_seed(index),
        **{f"cosmology_{k}": v for k, v in cosmology.to_dict().items()},
    }
    save_artifact(box_path(output_dir, index), {name: obj.to("cpu") for name, obj in objects.items()}, attrs=attrs)
    halos = objects.get("halos", objects.get("halos_a"))
    return index, len(halos) if isinstance(halos, HaloCatalog) else 0
