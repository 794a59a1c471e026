"""The HOD over chunks of a halo catalog, one task per chunk: the same galaxies as one :func:`populate` call.

:func:`~cosmoseg.galaxies.hod.populate` draws every random number from a counter-based hash of (seed, halo id,
stream, counter), so a run of consecutive rows populated alone gets exactly the galaxies those rows get in the whole
catalog, provided that

- the chunk's halo ids are the whole catalog's: a catalog without an ``id`` column is keyed by row index, so a chunk
  gets its global row indices as ``id``;
- its galaxies' ``host`` (the row of the host halo) is shifted by the chunk's first row;
- assembly bias (``secondary``) ranks haloes at fixed mass over the whole catalog: the signs are computed once from
  the mass and secondary columns, and each chunk gets its slice.

Galaxies come halo by halo, so the chunks' catalogs in chunk order are the whole catalog's, bit for bit.

Two entry points:

- :func:`populate_chunked`: a ``HaloCatalog`` in memory -> one ``GalaxyCatalog``; the ``galaxies.hod`` stage's
  ``chunk_rows`` param, whose tasks go where the pipeline's ``[run] executor`` says.
- :func:`populate_file`: a halo catalog in an artifact file -> the galaxy catalog in chunk files
  ``galaxies_<i>.h5`` (each task reads its rows from the file and writes its chunk atomically; resumable), for
  catalogs too large for one process; ``cosmoseg galaxies hod``. :func:`load_chunks` joins the chunk files.

The chunk machinery shared with the samplers (bounds, joining, chunk files) lives in
:mod:`cosmoseg.galaxies.chunks`; its names are importable from here too.

Satellites go on NFW profiles (member particles are not supported here).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog, count_rows, load_rows
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.chunks import (
    CHUNK_FILE,
    chunk_bounds,
    concat_catalogs,
    cpu_rows,
    file_fingerprint,
    load_chunks,
    read_halo_rows,
    save_chunk,
    write_chunks,
)
from cosmoseg.galaxies.hod import HODParams, _split_at_fixed_mass, populate, prepare_hod
from cosmoseg.pipeline.executor import TaskMap, local_map, run_in_order

__all__ = [
    "CHUNK_FILE",
    "assembly_signs",
    "chunk_bounds",
    "concat_catalogs",
    "load_chunks",
    "populate_chunk",
    "populate_chunked",
    "populate_file",
]

FINGERPRINT_KEY = "hod_fingerprint"
"""The attribute of a chunk file of :func:`populate_file` holding its run's fingerprint."""

Signs = npt.NDArray[np.int8]


def assembly_signs(mass: torch.Tensor, secondary: torch.Tensor, ab_bin_dex: float = 0.1) -> Signs:
    """(N,) int8: +1 / -1 for haloes above / below the median ``secondary`` at fixed mass (bins of ``ab_bin_dex`` in
    log10 M), 0 for the median halo of an odd bin: what :func:`prepare_hod` computes for the whole catalog.
    mass: (N,) Msun/h; secondary: (N,) any halo property."""
    log_mass = np.log10(mass.detach().cpu().to(torch.float64).numpy())
    return _split_at_fixed_mass(log_mass, secondary.detach().cpu().to(torch.float64).numpy(), ab_bin_dex)


def populate_chunk(
    halos: HaloCatalog,
    start: int,
    params: HODParams,
    seed: int,
    *,
    velocities: bool = True,
    secondary: str | None = None,
    ab_sign: Signs | None = None,
) -> GalaxyCatalog:
    """The galaxies of rows ``start .. start + len(halos)`` of a larger catalog, as ``populate`` puts them there.

    halos: the chunk's rows. ab_sign: their slice of :func:`assembly_signs` of the whole catalog (needed with
    ``secondary``). The ``host`` column holds rows of the whole catalog.
    """
    if secondary and ab_sign is None:
        raise ValidationError("a secondary property needs the whole catalog's ab_sign", context="populate_chunk")
    if "id" not in halos:
        ids = torch.arange(start, start + len(halos), dtype=torch.int64, device=halos["pos"].device)
        halos = halos.with_columns(id=ids)
    prepared = prepare_hod(halos, velocities=velocities, secondary=secondary)
    if ab_sign is not None:
        prepared = dataclasses.replace(prepared, ab_sign=np.asarray(ab_sign, dtype=np.int8))
    galaxies = populate(prepared, params, seed)
    return galaxies.with_columns(host=galaxies["host"] + start)


def _memory_task(
    job: tuple[int, HaloCatalog, Signs | None],
    *,
    params: HODParams,
    seed: int,
    velocities: bool,
    secondary: str | None,
) -> GalaxyCatalog:
    start, halos, signs = job
    return populate_chunk(halos, start, params, seed, velocities=velocities, secondary=secondary, ab_sign=signs)


def populate_chunked(
    halos: HaloCatalog,
    params: HODParams,
    seed: int,
    *,
    chunk_rows: int,
    velocities: bool = True,
    secondary: str | None = None,
    ab_bin_dex: float = 0.1,
    map_tasks: TaskMap = local_map,
) -> GalaxyCatalog:
    """``populate(prepare_hod(halos, ...), params, seed)``, computed over chunks of ``chunk_rows`` haloes, one task
    each (``map_tasks``: in this process by default, or a cluster's); the same catalog bit for bit, on the device of
    ``halos``. The chunks travel to the tasks on the CPU."""
    signs = assembly_signs(halos["mass"], halos[secondary], ab_bin_dex) if secondary and secondary in halos else None
    jobs = []
    for start, stop in chunk_bounds(len(halos), chunk_rows):
        jobs.append((start, cpu_rows(halos, start, stop), None if signs is None else signs[start:stop]))
    task = functools.partial(_memory_task, params=params, seed=seed, velocities=velocities, secondary=secondary)
    return concat_catalogs(run_in_order(map_tasks, task, jobs)).to(halos["pos"].device)


def _fingerprint(halo_file: Path, name: str, params: HODParams, seed: int, options: dict[str, object]) -> str:
    return file_fingerprint(halo_file, name, {"hod": dataclasses.asdict(params), "seed": seed, **options})


def _file_task(
    job: tuple[int, int, int, Signs | None],
    *,
    halo_file: str,
    name: str,
    output_dir: str,
    params: HODParams,
    seed: int,
    velocities: bool,
    secondary: str | None,
    attrs: dict[str, object],
) -> tuple[int, int]:
    index, start, stop, signs = job
    halos = read_halo_rows(halo_file, name, start, stop)
    galaxies = populate_chunk(halos, start, params, seed, velocities=velocities, secondary=secondary, ab_sign=signs)
    save_chunk(output_dir, index, start, stop, galaxies, attrs)
    return index, len(galaxies)


def _whole_column_signs(halo_file: Path, name: str, secondary: str, ab_bin_dex: float, chunk_rows: int) -> Signs:
    """:func:`assembly_signs` of a catalog file, reading it chunk by chunk (only mass and the secondary are kept)."""
    mass, prop = [], []
    for start, stop in chunk_bounds(count_rows(halo_file, name), chunk_rows):
        rows = load_rows(halo_file, name, start, stop)
        if secondary not in rows:
            raise ValidationError(f"{halo_file}: {name!r} has no column {secondary!r} (the secondary property)")
        mass.append(rows["mass"])
        prop.append(rows[secondary])
    return assembly_signs(torch.cat(mass), torch.cat(prop), ab_bin_dex)


def populate_file(
    halo_file: str | Path,
    output_dir: str | Path,
    params: HODParams,
    seed: int,
    *,
    chunk_rows: int,
    name: str = "halos",
    velocities: bool = True,
    secondary: str | None = None,
    ab_bin_dex: float = 0.1,
    resume: bool = False,
    map_tasks: TaskMap = local_map,
    log: Callable[[str], None] = lambda message: None,
) -> list[Path]:
    """The HOD galaxies of the halo catalog ``name`` of the artifact ``halo_file``, written in chunk files
    ``output_dir/galaxies_<i>.h5`` (object ``galaxies``; attributes: the chunk, its halo rows, the number of chunks
    and a fingerprint of the inputs); returns the chunk files in order.

    One task per chunk of ``chunk_rows`` haloes (``map_tasks``): it reads its rows from ``halo_file`` and writes its
    file atomically, so the caller never holds the catalog, and an interrupted run loses only the chunks in
    progress. resume: keep chunk files written with the same inputs. :func:`load_chunks` joins them into the
    catalog ``populate`` gives for the whole file, bit for bit. The workers must see both paths.
    """
    halo_file, out = Path(halo_file).resolve(), Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    bounds = chunk_bounds(count_rows(halo_file, name), chunk_rows)
    options: dict[str, object] = {
        "velocities": velocities,
        "secondary": secondary or "",
        "ab_bin_dex": ab_bin_dex,
        "chunk_rows": chunk_rows,
    }
    fingerprint = _fingerprint(halo_file, name, params, seed, options)
    signs = _whole_column_signs(halo_file, name, secondary, ab_bin_dex, chunk_rows) if secondary else None
    task = functools.partial(
        _file_task,
        halo_file=str(halo_file),
        name=name,
        output_dir=str(out),
        params=params,
        seed=seed,
        velocities=velocities,
        secondary=secondary,
        attrs={FINGERPRINT_KEY: fingerprint, "n_chunks": len(bounds)},
    )
    extras = None if signs is None else [signs[start:stop] for start, stop in bounds]
    return write_chunks(
        task, bounds, out, fingerprint, key=FINGERPRINT_KEY, resume=resume, map_tasks=map_tasks, log=log, extras=extras
    )
