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

Satellites go on NFW profiles (member particles are not supported here).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from cosmoseg.data import (
    GalaxyCatalog,
    HaloCatalog,
    count_rows,
    load_artifact,
    load_rows,
    open_artifact,
    save_artifact,
)
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.hod import HODParams, _split_at_fixed_mass, populate, prepare_hod
from cosmoseg.pipeline.executor import TaskMap, local_map, run_in_order
from cosmoseg.pipeline.files import files_signature
from cosmoseg.sim.suites import box_is_done

__all__ = [
    "assembly_signs",
    "chunk_bounds",
    "concat_catalogs",
    "load_chunks",
    "populate_chunk",
    "populate_chunked",
    "populate_file",
]

CHUNK_FILE = "galaxies_{index:05d}.h5"
"""The name of chunk ``index`` of :func:`populate_file`."""

Signs = npt.NDArray[np.int8]


def chunk_bounds(n_rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of at most ``chunk_rows`` rows covering ``n_rows`` (one empty chunk
    for an empty catalog)."""
    if chunk_rows < 1:
        raise ValidationError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return [(start, min(start + chunk_rows, n_rows)) for start in range(0, max(n_rows, 1), chunk_rows)] or [(0, 0)]


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


def concat_catalogs(parts: Sequence[GalaxyCatalog]) -> GalaxyCatalog:
    """The catalogs one after another (columns, units, box and meta of the first; all have the same columns)."""
    if not parts:
        raise ValidationError("no catalogs to join")
    first = parts[0]
    columns = {name: torch.cat([part[name] for part in parts]) for name in first.columns}
    return GalaxyCatalog(columns=columns, units=first.units, box=first.box, meta=first.meta)


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
        # copies, not views: a pickled view would carry the whole catalog's storage to every task
        part = dataclasses.replace(halos, columns={k: v[start:stop].cpu().clone() for k, v in halos.columns.items()})
        jobs.append((start, part, None if signs is None else signs[start:stop]))
    task = functools.partial(_memory_task, params=params, seed=seed, velocities=velocities, secondary=secondary)
    return concat_catalogs(run_in_order(map_tasks, task, jobs)).to(halos["pos"].device)


def _fingerprint(halo_file: Path, name: str, params: HODParams, seed: int, options: dict[str, object]) -> str:
    payload = {
        "halos": files_signature(str(halo_file)),
        "object": name,
        "hod": dataclasses.asdict(params),
        "seed": seed,
        **options,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


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
    halos = load_rows(halo_file, name, start, stop)
    if not isinstance(halos, HaloCatalog):
        raise ValidationError(f"{halo_file}: {name!r} is a {type(halos).__name__}, not a HaloCatalog")
    galaxies = populate_chunk(halos, start, params, seed, velocities=velocities, secondary=secondary, ab_sign=signs)
    chunk_attrs = {**attrs, "chunk": index, "first_halo": start, "stop_halo": stop}
    save_artifact(Path(output_dir) / CHUNK_FILE.format(index=index), {"galaxies": galaxies}, attrs=chunk_attrs)
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
    paths = [out / CHUNK_FILE.format(index=i) for i in range(len(bounds))]
    todo = []
    for index, (start, stop) in enumerate(bounds):
        if resume and _chunk_is_done(paths[index], fingerprint):
            log(f"chunk {index}: done already, skipped (--resume)")
            continue
        todo.append((index, start, stop, None if signs is None else signs[start:stop]))
    task = functools.partial(
        _file_task,
        halo_file=str(halo_file),
        name=name,
        output_dir=str(out),
        params=params,
        seed=seed,
        velocities=velocities,
        secondary=secondary,
        attrs={"hod_fingerprint": fingerprint, "n_chunks": len(bounds)},
    )
    for _, (index, n_galaxies) in map_tasks(task, todo):
        start, stop = bounds[index]
        log(f"chunk {index}: haloes {start}..{stop - 1}, {n_galaxies} galaxies -> {paths[index]}")
    return paths


def _chunk_is_done(path: Path, fingerprint: str) -> bool:
    return box_is_done(path, fingerprint, key="hod_fingerprint")


def load_chunks(output_dir: str | Path, device: torch.device | str = "cpu") -> GalaxyCatalog:
    """The galaxy catalog :func:`populate_file` wrote in chunks, joined (it must fit in memory). ValidationError
    when chunks are missing or come from different runs."""
    folder = Path(output_dir)
    paths = sorted(folder.glob("galaxies_*.h5"))
    if not paths:
        raise ValidationError(f"{folder}: no galaxies_*.h5 chunk files")
    stamps = []
    for path in paths:
        with open_artifact(path) as f:
            stamps.append((str(f.attrs.get("hod_fingerprint", "")), int(f.attrs.get("n_chunks", -1))))
    expected = [folder / CHUNK_FILE.format(index=i) for i in range(stamps[0][1])]
    if len(set(stamps)) != 1 or paths != expected:
        raise ValidationError(
            f"{folder}: the chunk files are not one complete run ({len(paths)} file(s), {stamps[0][1]} expected, "
            f"{len(set(stamps))} different run(s)); run populate_file again with resume"
        )
    parts = [load_artifact(path, device)["galaxies"] for path in paths]
    return concat_catalogs([p for p in parts if isinstance(p, GalaxyCatalog)])
