"""Galaxies for every box of a suite: the galaxy model of :mod:`cosmoseg.galaxies.model` with nuisance parameters drawn
per box, for learning cosmology from galaxy catalogs (``cosmoseg galaxies paint-suite``, then ``cosmoseg infer``).

A field-level inference must not learn the galaxy model's parameters as if they were cosmology: each box gets its own
point of a Latin hypercube over the model's most uncertain knobs (:data:`NUISANCE_OFFSETS`: the scatter of M* at fixed
halo mass, the satellite occupation's M1 and slope, the quenching mass), as offsets from a named variant, so the two
variants ("fiducial", "moster13") stay two different "galaxy formation codes" with their own nuisance cloud.

Each box ``box_<i>.h5`` of the suite gives ``<output>/galaxies_<i>.h5`` holding one :class:`GalaxyCatalog`
``galaxies`` (centrals and satellites, in the box's cosmology) whose meta records the variant, the nuisance values, the
box index and the suite; files are written atomically and ``resume`` keeps those already written with the same
settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import numpy as np

from cosmoseg.data import GalaxyCatalog, HaloCatalog, load_artifact, save_artifact
from cosmoseg.errors import ArtifactError, ConfigError
from cosmoseg.galaxies.model import REQUIRED_COLUMNS, VARIANTS
from cosmoseg.galaxies.model import paint_galaxies as paint_with_model
from cosmoseg.sim.suites import box_index, box_is_done, find_boxes

T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterator[T]]

NUISANCE_OFFSETS: dict[str, tuple[float, float]] = {
    "scatter_dex": (-0.1, 0.1),
    "sat_log_m1": (-0.3, 0.3),
    "sat_alpha": (-0.2, 0.2),
    "quench_log_mass": (-0.3, 0.3),
}
"""Per-box offsets from the variant's value of each nuisance parameter: a Latin hypercube over [low, high]."""


@dataclasses.dataclass(frozen=True)
class SuiteGalaxySettings:
    """What decides a box's galaxies (and the fingerprint ``resume`` compares).

    variant: the galaxy model (a name in ``galaxies.model.VARIANTS``).
    nuisance: parameter -> (low, high) offsets from the variant's value; empty = the variant as it is.
    min_log_mstar: keep galaxies with log10 M* / (Msun/h) at least this (choose it above the suite's resolution).
    seed: seeds the Latin hypercube and each box's draws (with the box index).
    halo_columns: paint from these halo columns only (the others take the model's fallbacks, as for haloes that
        lack them, e.g. those read off the initial conditions); empty = every column the haloes have.
    """

    variant: str = "fiducial"
    nuisance: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=lambda: dict(NUISANCE_OFFSETS))
    min_log_mstar: float = 9.0
    seed: int = 0
    halo_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.variant not in VARIANTS:
            problems.append(f"unknown galaxy model variant {self.variant!r}; known: {sorted(VARIANTS)}")
        fields = {f.name for f in dataclasses.fields(VARIANTS["fiducial"])}
        for name, bounds in self.nuisance.items():
            if name not in fields:
                problems.append(f"nuisance parameter {name!r} is not a galaxy model parameter")
            elif len(bounds) != 2 or not all(math.isfinite(b) for b in bounds) or not bounds[0] <= bounds[1]:
                problems.append(f"nuisance range of {name!r} must be [low, high] with low <= high, got {bounds}")
        missing = sorted(set(REQUIRED_COLUMNS) - set(self.halo_columns))
        if self.halo_columns and missing:
            problems.append(f"halo_columns must keep the model's required column(s) {missing}")
        if problems:
            raise ConfigError("\n".join(problems), context="paint-suite")
        object.__setattr__(self, "nuisance", {k: (float(a), float(b)) for k, (a, b) in self.nuisance.items()})
        object.__setattr__(self, "halo_columns", tuple(self.halo_columns))

    def fingerprint(self, halos_source: str = "") -> str:
        """A digest of the settings (and of ``halos_source``, the folder of the haloes when not the suite's own);
        the settings of the first version, without those two, digest as they did then."""
        payload = dataclasses.asdict(self)
        if not self.halo_columns:
            del payload["halo_columns"]
        if halos_source:
            payload["halos_source"] = halos_source
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()


def nuisance_values(settings: SuiteGalaxySettings, n_boxes: int, index: int) -> dict[str, float]:
    """The galaxy model parameters of box ``index`` of ``n_boxes``: the variant's value plus the box's offset."""
    base = VARIANTS[settings.variant]
    names = sorted(settings.nuisance)
    if not names:
        return {}
    from scipy.stats import qmc

    unit = qmc.LatinHypercube(d=len(names), seed=settings.seed).random(n_boxes)[index]
    values = {}
    for name, u in zip(names, unit, strict=True):
        low, high = settings.nuisance[name]
        values[name] = float(getattr(base, name) + low + u * (high - low))
    return values


def box_galaxies(
    halos: HaloCatalog, settings: SuiteGalaxySettings, nuisance: Mapping[str, float], seed: int
) -> GalaxyCatalog:
    """Centrals and satellites of one box's ``halos`` with the variant changed by ``nuisance``, above the mass cut."""
    params = dataclasses.replace(VARIANTS[settings.variant], **nuisance)
    if settings.halo_columns:
        missing = sorted(set(settings.halo_columns) - set(halos.columns))
        if missing:
            raise ConfigError(f"the haloes lack the halo_columns {missing}; they have {sorted(halos.columns)}")
        kept = {name: halos.columns[name] for name in settings.halo_columns}
        units = {name: unit for name, unit in halos.units.items() if name in kept}
        halos = dataclasses.replace(halos, columns=kept, units=units)
    galaxies = paint_with_model(halos, variant=params, seed=seed, min_log_mstar=settings.min_log_mstar)
    meta = dict(galaxies.meta) | {"galaxy_model": settings.variant, "min_log_mstar": settings.min_log_mstar}
    meta |= {f"nuisance_{name}": value for name, value in nuisance.items()}
    return dataclasses.replace(galaxies, meta=meta)


def galaxies_path(output_dir: Path, index: int) -> Path:
    return output_dir / f"galaxies_{index:04d}.h5"


def paint_suite(
    suite_dir: str | Path,
    output_dir: str | Path,
    settings: SuiteGalaxySettings,
    *,
    boxes: Iterable[int] | None = None,
    halos_dir: str | Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> list[Path]:
    """Paint the galaxies of every box of ``suite_dir`` (or of ``boxes``) into ``output_dir``; returns the files.

    The number of boxes (the Latin hypercube's size) is that of the suite's ``suite.json`` when present, else the
    number of box files, so painting a part of a suite gives each box the values it gets in the whole suite.
    ``halos_dir``: take each box's haloes from ``halos_dir/halos_<i>.h5`` (e.g. ``cosmoseg protohalo catalogs``, the
    haloes of the initial conditions alone) instead of the box file's N-body ``halos``; the nuisance values and draws
    of a box are the same either way, so the two catalogs of a box differ by their haloes only.
    """
    suite, out = Path(suite_dir), Path(output_dir)
    paths = {box_index(p): p for p in find_boxes(suite)}
    n_boxes = len(paths)
    summary = suite / "suite.json"
    if summary.is_file():
        n_boxes = max(n_boxes, len(json.loads(summary.read_text()).get("boxes", {})))
    wanted = sorted(paths) if boxes is None else list(boxes)
    missing = [i for i in wanted if i not in paths]
    if missing:
        raise ConfigError(f"boxes {missing} have no file box_<i>.h5 in {suite}", context="paint-suite")
    out.mkdir(parents=True, exist_ok=True)
    halos_folder = Path(halos_dir) if halos_dir is not None else None
    if halos_folder is not None and not halos_folder.is_dir():
        raise ConfigError(f"{halos_folder}: no such folder of halo catalogs", context="paint-suite")
    fingerprint = settings.fingerprint(str(halos_folder.resolve()) if halos_folder is not None else "")
    written = []
    items: Iterable[int] = progress(wanted, "painting galaxies") if progress else wanted
    for index in items:
        path = galaxies_path(out, index)
        written.append(path)
        if resume and box_is_done(path, fingerprint, "galaxy_settings_fingerprint"):
            continue
        source = paths[index] if halos_folder is None else halos_folder / f"halos_{index:04d}.h5"
        halos = load_artifact(source).get("halos")
        if not isinstance(halos, HaloCatalog):
            raise ArtifactError(f"{source}: holds no HaloCatalog 'halos'")
        nuisance = nuisance_values(settings, n_boxes, index)
        seed = int(np.random.SeedSequence([settings.seed, index, 7]).generate_state(1)[0])
        galaxies = box_galaxies(halos, settings, nuisance, seed)
        galaxies = dataclasses.replace(galaxies, meta=galaxies.meta | {"box_index": index})
        attrs = {"galaxy_settings_fingerprint": fingerprint, "box_index": index, "source": str(source)}
        save_artifact(path, {"galaxies": galaxies}, attrs=attrs)
        log(f"box {index}: {len(galaxies)} galaxies -> {path}")
    return written
