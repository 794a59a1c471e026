"""A central galaxy for every halo from a joint sampler: what the sampler stages (galaxies.flow / hival / gauss /
regression) draw, callable without a pipeline.

:func:`sample_centrals` puts one central in every halo at least as heavy as ``min_mass``, at the halo's position
with its velocity (``is_central`` True, ``host`` = the halo's row), its properties drawn from a fitted
:class:`~cosmoseg.galaxies.samplers.base.JointSampler` conditioned on the halo's properties. A sampler is fitted on
the centrals of a training catalog with :func:`cosmoseg.galaxies.features.central_rows` and ``fit``, or loaded with
:func:`~cosmoseg.galaxies.samplers.base.load_sampler`.

The draws are made block by block: halo rows ``b * DRAW_BLOCK .. (b + 1) * DRAW_BLOCK`` of the catalog (counted
before the ``min_mass`` cut) are block ``b``; its haloes above ``min_mass`` go through the sampler as one batch,
with a ``torch.Generator`` of its own seeded with ``spawn_seed(seed, b)``. The galaxies of a block therefore depend
on the seed and the block's rows only, so a run of whole blocks drawn alone (:func:`sample_rows`, a chunk of
:mod:`cosmoseg.galaxies.centrals_chunks` on another process) gets exactly the galaxies it gets in the whole catalog.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.features import property_matrix
from cosmoseg.galaxies.samplers.base import JointSampler
from cosmoseg.pipeline.context import spawn_seed

__all__ = ["DRAW_BLOCK", "block_generator", "chunk_rows_problems", "sample_centrals", "sample_rows"]

DRAW_BLOCK = 65536
"""Halo rows per draw block (``2**16``). Each block draws with its own generator (seeded from the seed and the
block's index) and goes through the sampler's network as one batch, so the galaxies of a block do not depend on
the rest of the catalog: a chunk made of whole blocks, drawn on any process, reproduces its rows of the
single-process catalog bit for bit. Large enough that the per-block overhead (a generator, a network call) is
negligible, small enough that a block's activations stay a few MB. Changing it changes every draw."""


def block_generator(seed: int, block: int) -> torch.Generator:
    """The CPU generator of draw block ``block`` (rows ``block * DRAW_BLOCK ..``) under ``seed`` (>= 0)."""
    return torch.Generator().manual_seed(spawn_seed(seed, block))


def chunk_rows_problems(chunk_rows: int, block_rows: int = DRAW_BLOCK) -> list[str]:
    """What is wrong with ``chunk_rows`` as the chunk size of a sampler's draws (empty when nothing is): chunks
    must be whole draw blocks, so that they draw what the single-process run draws."""
    if chunk_rows < 1 or chunk_rows % block_rows:
        lower = max(block_rows, chunk_rows // block_rows * block_rows)
        return [
            f"chunk_rows must be a positive multiple of the draw block, {block_rows} halo rows (each block draws with "
            f"its own generator, so only whole blocks reproduce the single-process catalog), got {chunk_rows}; "
            f"e.g. {lower} or {lower + block_rows}"
        ]
    return []


def sample_rows(
    sampler: JointSampler,
    halos: HaloCatalog,
    start: int,
    seed: int,
    *,
    min_mass: float = 0.0,
    provenance: Mapping[str, str] | None = None,
    block_rows: int = DRAW_BLOCK,
) -> GalaxyCatalog:
    """The centrals of rows ``start .. start + len(halos)`` of a larger catalog, as :func:`sample_centrals` draws
    them there (``start`` a multiple of ``block_rows``); ``host`` holds rows of the whole catalog.

    halos: (N rows) the chunk's haloes. seed: >= 0. min_mass: Msun/h. The sampler runs on the CPU; the galaxies
    come back on the device of ``halos``.
    """
    if start % block_rows:
        raise ValidationError(f"a chunk starts at a multiple of the draw block ({block_rows} rows), got row {start}")
    if seed < 0:
        raise ValidationError(f"the seed of the draws must be >= 0, got {seed}")
    device = halos["pos"].device
    on_cpu = dataclasses.replace(halos, columns={k: v.cpu() for k, v in halos.columns.items()})
    x = property_matrix(on_cpu, sampler.condition_names, role="halo catalog")  # (N, C): every bad value, in one error
    heavy = on_cpu["mass"] >= min_mass
    rows, parts = [], []
    n_targets = len(sampler.target_names)
    for lo in range(0, len(halos), block_rows):
        keep = torch.nonzero(heavy[lo : lo + block_rows]).reshape(-1) + lo
        rows.append(keep)
        if len(keep):
            generator = block_generator(seed, (start + lo) // block_rows)
            parts.append(sampler.sample(x[keep], 1, generator=generator)[0].to(torch.float32))
    keep = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.int64)
    draws = torch.cat(parts) if parts else torch.zeros(0, n_targets)
    columns: dict[str, torch.Tensor] = {"pos": on_cpu["pos"][keep]}
    if "vel" in halos.columns:
        columns["vel"] = on_cpu["vel"][keep]
    columns |= {"host": keep + start, "is_central": torch.ones(len(keep), dtype=torch.bool)}
    columns |= {name: draws[:, j].to(torch.float32) for j, name in enumerate(sampler.target_names)}
    provenance = dict(provenance or {})
    origin = provenance.get("model_origin", "")
    described = origin if origin.startswith("fitted") else provenance.get("model_file", "")
    meta = {"sampler": sampler.method, "model": described, **provenance, "min_mass": min_mass}
    return GalaxyCatalog(columns=columns, box=halos.box, meta=meta).to(device)


def sample_centrals(
    sampler: JointSampler,
    halos: HaloCatalog,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    min_mass: float = 0.0,
    provenance: Mapping[str, str] | None = None,
    block_rows: int = DRAW_BLOCK,
) -> GalaxyCatalog:
    """One central per halo of ``halos`` with ``mass`` >= ``min_mass`` (Msun/h), its properties (the sampler's
    ``target_names``, float32) one draw of ``sampler``, made block by block (see the module docstring) under
    ``seed`` (>= 0; or one seed drawn from ``generator``: give exactly one of the two).

    Columns: ``pos`` (and ``vel`` when the haloes have it) of the host, ``host``, ``is_central`` and the targets.
    ``meta``: ``sampler`` (the method), ``model`` (``model_origin`` when it says "fitted ...", else ``model_file``),
    the ``provenance`` entries (``model_file``, ``model_sha256``, ``model_origin``, as the stages give them) and
    ``min_mass``. The same catalog, bit for bit, as :func:`cosmoseg.galaxies.centrals_chunks.sample_chunked` over
    chunks of whole blocks.
    """
    if (seed is None) == (generator is None):
        raise ValidationError("sample_centrals takes a seed or a generator (exactly one)")
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return sample_rows(sampler, halos, 0, seed, min_mass=min_mass, provenance=provenance, block_rows=block_rows)
