"""The sampler stages' centrals over chunks of a halo catalog, one task per chunk: the same galaxies as one
:func:`~cosmoseg.galaxies.centrals.sample_centrals` call with the same seed.

:func:`~cosmoseg.galaxies.centrals.sample_centrals` draws block by block (:data:`~cosmoseg.galaxies.centrals.
DRAW_BLOCK` halo rows, each block its own generator seeded from (seed, block index), each block one batch through
the sampler), so a chunk of whole blocks drawn alone gets exactly its rows' galaxies of the whole catalog. Chunks
must therefore be multiples of the block (a ValidationError says so otherwise); ``min_mass`` is applied inside each
block, so blocks and chunks are defined on the rows of the halo catalog before the cut, and ``host`` is the row of
the whole catalog.

Two entry points, as for the HOD (:mod:`cosmoseg.galaxies.hod_chunks`):

- :func:`sample_chunked`: a ``HaloCatalog`` in memory -> one ``GalaxyCatalog``; the sampler stages' ``chunk_rows``
  param, whose tasks go where the pipeline's ``[run] executor`` says.
- :func:`sample_file`: a halo catalog in an artifact file -> the galaxy catalog in chunk files ``galaxies_<i>.h5``
  (each task reads its rows from the file and writes its chunk atomically; resumable), for catalogs too large for
  one process; ``cosmoseg galaxies sample``. :func:`~cosmoseg.galaxies.chunks.load_chunks` joins the chunk files.

The sampler travels to the tasks as its payload (:meth:`~cosmoseg.galaxies.samplers.base.JointSampler.payload`:
plain types and tensors) and is rebuilt there. Bit-for-bit equality across processes assumes the same PyTorch
build and CPU kind on every worker (the network's float arithmetic must be the same).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog, count_rows
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.centrals import DRAW_BLOCK, chunk_rows_problems, sample_rows
from cosmoseg.galaxies.chunks import (
    chunk_bounds,
    concat_catalogs,
    cpu_rows,
    file_fingerprint,
    read_halo_rows,
    save_chunk,
    write_chunks,
)
from cosmoseg.galaxies.samplers.base import JointSampler, sampler_from_payload
from cosmoseg.pipeline.executor import TaskMap, local_map, run_in_order

__all__ = ["FINGERPRINT_KEY", "check_chunk_rows", "sample_chunked", "sample_file", "sampler_digest"]

FINGERPRINT_KEY = "sampler_fingerprint"
"""The attribute of a chunk file of :func:`sample_file` holding its run's fingerprint."""


def check_chunk_rows(chunk_rows: int, block_rows: int = DRAW_BLOCK) -> None:
    """ValidationError unless ``chunk_rows`` is a positive multiple of ``block_rows``."""
    problems = chunk_rows_problems(chunk_rows, block_rows)
    if problems:
        raise ValidationError(problems)


def sampler_digest(sampler: JointSampler) -> str:
    """sha256 of a fitted sampler's payload (method, names, hyper-parameters, scalers, weights, card)."""
    digest = hashlib.sha256()

    def walk(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            return {"tensor": str(value.dtype), "shape": list(value.shape), "sha256": hashlib.sha256(data).hexdigest()}
        if isinstance(value, Mapping):
            return {str(k): walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value if isinstance(value, str | int | float | bool) or value is None else repr(value)

    digest.update(json.dumps(walk(sampler.payload()), sort_keys=True).encode())
    return digest.hexdigest()


def _memory_task(
    job: tuple[int, HaloCatalog],
    *,
    payload: dict[str, Any],
    seed: int,
    min_mass: float,
    provenance: dict[str, str],
    block_rows: int,
) -> GalaxyCatalog:
    start, halos = job
    sampler = sampler_from_payload(payload, "the sampler handed to the task")
    return sample_rows(sampler, halos, start, seed, min_mass=min_mass, provenance=provenance, block_rows=block_rows)


def sample_chunked(
    sampler: JointSampler,
    halos: HaloCatalog,
    seed: int,
    *,
    chunk_rows: int,
    min_mass: float = 0.0,
    provenance: Mapping[str, str] | None = None,
    block_rows: int = DRAW_BLOCK,
    map_tasks: TaskMap = local_map,
) -> GalaxyCatalog:
    """``sample_centrals(sampler, halos, seed=seed, ...)``, computed over chunks of ``chunk_rows`` haloes (a
    multiple of ``block_rows``; ValidationError otherwise), one task each (``map_tasks``: in this process by
    default, or a cluster's); the same catalog bit for bit, on the device of ``halos``. The chunks travel to the
    tasks on the CPU. min_mass: Msun/h."""
    check_chunk_rows(chunk_rows, block_rows)
    jobs = [(start, cpu_rows(halos, start, stop)) for start, stop in chunk_bounds(len(halos), chunk_rows)]
    task = functools.partial(
        _memory_task,
        payload=sampler.payload(),
        seed=seed,
        min_mass=min_mass,
        provenance=dict(provenance or {}),
        block_rows=block_rows,
    )
    return concat_catalogs(run_in_order(map_tasks, task, jobs)).to(halos["pos"].device)


def _file_task(
    job: tuple[int, int, int, None],
    *,
    halo_file: str,
    name: str,
    output_dir: str,
    payload: dict[str, Any],
    seed: int,
    min_mass: float,
    provenance: dict[str, str],
    block_rows: int,
    attrs: dict[str, object],
) -> tuple[int, int]:
    index, start, stop, _ = job
    halos = read_halo_rows(halo_file, name, start, stop)
    sampler = sampler_from_payload(payload, "the sampler handed to the task")
    galaxies = sample_rows(sampler, halos, start, seed, min_mass=min_mass, provenance=provenance, block_rows=block_rows)
    save_chunk(output_dir, index, start, stop, galaxies, attrs)
    return index, len(galaxies)


def sample_file(
    halo_file: str | Path,
    output_dir: str | Path,
    sampler: JointSampler,
    seed: int,
    *,
    chunk_rows: int,
    name: str = "halos",
    min_mass: float = 0.0,
    provenance: Mapping[str, str] | None = None,
    block_rows: int = DRAW_BLOCK,
    resume: bool = False,
    map_tasks: TaskMap = local_map,
    log: Callable[[str], None] = lambda message: None,
) -> list[Path]:
    """The centrals drawn by ``sampler`` for the halo catalog ``name`` of the artifact ``halo_file``, written in
    chunk files ``output_dir/galaxies_<i>.h5`` (object ``galaxies``; attributes: the chunk, its halo rows, the
    number of chunks and a fingerprint of the inputs: the halo file, the sampler's :func:`sampler_digest`, seed,
    min_mass, provenance, chunk and block sizes); returns the chunk files in order.

    One task per chunk of ``chunk_rows`` haloes (a multiple of ``block_rows``; ValidationError otherwise) through
    ``map_tasks``: it reads its rows from ``halo_file`` and writes its file atomically, so the caller never holds
    the catalog, and an interrupted run loses only the chunks in progress. resume: keep chunk files written with
    the same inputs. :func:`~cosmoseg.galaxies.chunks.load_chunks` joins them into the catalog ``sample_centrals``
    gives for the whole file with the same seed, bit for bit. The workers must see both paths.
    """
    check_chunk_rows(chunk_rows, block_rows)
    if seed < 0:
        raise ValidationError(f"the seed of the draws must be >= 0, got {seed}")
    halo_file, out = Path(halo_file).resolve(), Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    bounds = chunk_bounds(count_rows(halo_file, name), chunk_rows)
    provenance = dict(provenance or {})
    inputs = {
        "sampler": sampler_digest(sampler),
        "seed": seed,
        "min_mass": min_mass,
        "provenance": provenance,
        "chunk_rows": chunk_rows,
        "block_rows": block_rows,
    }
    fingerprint = file_fingerprint(halo_file, name, inputs)
    task = functools.partial(
        _file_task,
        halo_file=str(halo_file),
        name=name,
        output_dir=str(out),
        payload=sampler.payload(),
        seed=seed,
        min_mass=min_mass,
        provenance=provenance,
        block_rows=block_rows,
        attrs={FINGERPRINT_KEY: fingerprint, "n_chunks": len(bounds)},
    )
    return write_chunks(
        task, bounds, out, fingerprint, key=FINGERPRINT_KEY, resume=resume, map_tasks=map_tasks, log=log
    )
