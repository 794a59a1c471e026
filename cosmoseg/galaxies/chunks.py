"""The generic parts of galaxy catalogs made over chunks of a halo catalog, one task per chunk: the chunk bounds,
joining catalogs, and chunk files ``galaxies_<i>.h5`` written atomically, resumable and joined again.

Used by the HOD (:mod:`cosmoseg.galaxies.hod_chunks`) and the joint samplers (:mod:`cosmoseg.galaxies.centrals`).
A chunk file holds the object ``galaxies`` and the attributes ``chunk`` (its index), ``first_halo`` and
``stop_halo`` (its halo rows), ``n_chunks`` and a fingerprint of the run's inputs under a key naming the writer
(:data:`FINGERPRINT_KEYS`): a chunk written with the same inputs is kept by ``resume``, and :func:`load_chunks`
joins only the files of one complete run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog, load_artifact, load_rows, open_artifact, save_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.pipeline.executor import TaskMap
from cosmoseg.pipeline.files import files_signature
from cosmoseg.sim.suites import box_is_done

__all__ = [
    "CHUNK_FILE",
    "FINGERPRINT_KEYS",
    "chunk_bounds",
    "chunk_is_done",
    "concat_catalogs",
    "cpu_rows",
    "file_fingerprint",
    "load_chunks",
    "read_halo_rows",
    "save_chunk",
    "write_chunks",
]

CHUNK_FILE = "galaxies_{index:05d}.h5"
"""The name of chunk ``index`` of a galaxy catalog written in chunks."""

FINGERPRINT_KEYS = ("hod_fingerprint", "sampler_fingerprint")
"""The attribute holding a chunk file's fingerprint, one per writer (the HOD's, the samplers')."""

ChunkJob = tuple[int, int, int, Any]
"""What a chunk-file task gets: ``(chunk index, first halo row, stop halo row, the chunk's extra data or None)``."""


def chunk_bounds(n_rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of at most ``chunk_rows`` rows covering ``n_rows`` (one empty chunk
    for an empty catalog)."""
    if chunk_rows < 1:
        raise ValidationError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return [(start, min(start + chunk_rows, n_rows)) for start in range(0, max(n_rows, 1), chunk_rows)] or [(0, 0)]


def cpu_rows(halos: HaloCatalog, start: int, stop: int) -> HaloCatalog:
    """Rows ``start:stop`` of ``halos`` on the CPU, as copies: a pickled view would carry the whole catalog's storage
    to every task."""
    return dataclasses.replace(halos, columns={k: v[start:stop].cpu().clone() for k, v in halos.columns.items()})


def concat_catalogs(parts: Sequence[GalaxyCatalog]) -> GalaxyCatalog:
    """The catalogs one after another (columns, units, box and meta of the first; all have the same columns)."""
    if not parts:
        raise ValidationError("no catalogs to join")
    first = parts[0]
    columns = {name: torch.cat([part[name] for part in parts]) for name in first.columns}
    return GalaxyCatalog(columns=columns, units=first.units, box=first.box, meta=first.meta)


def file_fingerprint(halo_file: Path, name: str, payload: dict[str, Any]) -> str:
    """sha256 of the halo file's signature, the object's name and ``payload`` (JSON-able: the model, seed,
    options)."""
    everything = {"halos": files_signature(str(halo_file)), "object": name, **payload}
    return hashlib.sha256(json.dumps(everything, sort_keys=True).encode()).hexdigest()


def read_halo_rows(halo_file: str | Path, name: str, start: int, stop: int) -> HaloCatalog:
    """Rows ``start:stop`` of the HaloCatalog ``name`` of an artifact file (ValidationError for another type)."""
    halos = load_rows(halo_file, name, start, stop)
    if not isinstance(halos, HaloCatalog):
        raise ValidationError(f"{halo_file}: {name!r} is a {type(halos).__name__}, not a HaloCatalog")
    return halos


def save_chunk(
    output_dir: str | Path, index: int, start: int, stop: int, galaxies: GalaxyCatalog, attrs: dict[str, object]
) -> Path:
    """Write chunk ``index`` (the galaxies of halo rows ``start:stop``) atomically, with ``attrs`` (its run's
    fingerprint and ``n_chunks``) and its own ``chunk``, ``first_halo``, ``stop_halo``."""
    path = Path(output_dir) / CHUNK_FILE.format(index=index)
    chunk_attrs = {**attrs, "chunk": index, "first_halo": start, "stop_halo": stop}
    save_artifact(path, {"galaxies": galaxies}, attrs=chunk_attrs)
    return path


def chunk_is_done(path: Path, fingerprint: str, key: str) -> bool:
    """Whether ``path`` is a whole chunk file written with the inputs of ``fingerprint`` (attribute ``key``)."""
    return box_is_done(path, fingerprint, key=key)


def write_chunks(
    task: Callable[[ChunkJob], tuple[int, int]],
    bounds: Sequence[tuple[int, int]],
    output_dir: Path,
    fingerprint: str,
    *,
    key: str,
    resume: bool,
    map_tasks: TaskMap,
    log: Callable[[str], None],
    extras: Sequence[Any] | None = None,
) -> list[Path]:
    """Run ``task`` on every chunk ``(index, start, stop, extras[index] or None)`` not already written with these
    inputs (with ``resume``), through ``map_tasks``; the task writes ``output_dir/galaxies_<index>.h5`` (e.g. with
    :func:`save_chunk`, attributes ``{key: fingerprint, "n_chunks": len(bounds)}``) and returns ``(index, number of
    galaxies)``. Returns every chunk file, in order."""
    paths = [output_dir / CHUNK_FILE.format(index=i) for i in range(len(bounds))]
    todo: list[ChunkJob] = []
    for index, (start, stop) in enumerate(bounds):
        if resume and chunk_is_done(paths[index], fingerprint, key):
            log(f"chunk {index}: done already, skipped (--resume)")
            continue
        todo.append((index, start, stop, None if extras is None else extras[index]))
    for _, (index, n_galaxies) in map_tasks(task, todo):
        start, stop = bounds[index]
        log(f"chunk {index}: haloes {start}..{stop - 1}, {n_galaxies} galaxies -> {paths[index]}")
    return paths


def load_chunks(output_dir: str | Path, device: torch.device | str = "cpu") -> GalaxyCatalog:
    """The galaxy catalog written in chunk files ``galaxies_<i>.h5`` (by ``populate_file`` or ``sample_file``),
    joined (it must fit in memory). ValidationError when chunks are missing or come from different runs."""
    folder = Path(output_dir)
    paths = sorted(folder.glob("galaxies_*.h5"))
    if not paths:
        raise ValidationError(f"{folder}: no galaxies_*.h5 chunk files")
    stamps = []
    for path in paths:
        with open_artifact(path) as f:
            key = next((k for k in FINGERPRINT_KEYS if k in f.attrs), "")
            stamps.append((key, str(f.attrs.get(key, "")), int(f.attrs.get("n_chunks", -1))))
    expected = [folder / CHUNK_FILE.format(index=i) for i in range(stamps[0][2])]
    if len(set(stamps)) != 1 or paths != expected:
        raise ValidationError(
            f"{folder}: the chunk files are not one complete run ({len(paths)} file(s), {stamps[0][2]} expected, "
            f"{len(set(stamps))} different run(s)); run it again with resume"
        )
    parts = [load_artifact(path, device)["galaxies"] for path in paths]
    return concat_catalogs([p for p in parts if isinstance(p, GalaxyCatalog)])
