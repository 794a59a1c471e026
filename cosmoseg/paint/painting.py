"""Painting the stellar mass of a box with a successor model file: the library behind the ``paint.dm2gal`` stage.

:func:`paint_with_model` checks that the fields suit the model (their channels, voxel size, particle resolution and
halo assignment; another cosmology is a warning), runs the successor over periodic tiles, paints a realisation of
the stellar mass (or its conditional means), makes the catalog of the occupied voxels, and measures P(k) of the
painted field and, when the fields hold the truth (``log_mstar``), of the truth, scoring the painting against it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from cosmoseg.data import Field, GalaxyCatalog, Table
from cosmoseg.errors import ValidationError
from cosmoseg.mesh.grid import cell_centers, ijk_to_ids
from cosmoseg.paint.evaluation import score_painting, stellar_power_table
from cosmoseg.paint.fields import LOG_UNIT, from_log_mass, voxel_size
from cosmoseg.paint.models import (
    DEFAULT_MODEL,
    check_voxel,
    domain_notes,
    extrapolation_note,
    load_paint_model,
    unchecked_notes,
)
from cosmoseg.paint.network import Dm2GalFCN
from cosmoseg.paint.tiling import predict_tiled
from cosmoseg.pipeline.executor import TaskMap, local_map

__all__ = ["Painting", "paint_with_model"]


@dataclasses.dataclass(frozen=True)
class Painting:
    """What :func:`paint_with_model` makes of one box.

    painted: the ``log_mstar`` field (log10(1 + M* / (Msun/h)) per voxel; meta ``model``, ``threshold``); galaxies:
    one galaxy per occupied voxel, at the voxel centre (``pos``, ``log_mstar``); power: P(k) of the painted
    stellar-mass contrast (``k``, ``n_modes``, ``power``); power_truth: that of the truth, a table without rows when
    the fields hold none.
    """

    painted: Field
    galaxies: GalaxyCatalog
    power: Table
    power_truth: Table


def paint_with_model(
    fields: Field,
    model: str = "",
    *,
    tile: int = 64,
    catalog: bool = True,
    generator: torch.Generator | None = None,
    where: str = "paint.dm2gal",
    map_tasks: TaskMap = local_map,
    log: Callable[[str], None] | None = None,
) -> Painting:
    """Paint the stellar mass of the box of ``fields`` (channels ``log_dm``, ``log_halo`` of ``paint_fields``, and
    optionally the truth ``log_mstar``) with a successor model file.

    model: a file of ``cosmoseg paint train`` ("" = the shipped successor). tile: output side of each periodic tile
    (voxels); each tile is one task of ``map_tasks`` (in this process by default, or a Dask cluster's:
    ``ctx.map_tasks`` in a stage, :func:`~cosmoseg.paint.tiling.predict_tiled`). catalog: False gives a galaxy catalog
    without rows. generator: draw each occupied voxel's stellar mass from the predicted scatter with it (a
    realisation, as a hydrodynamic run is); ``None``: the conditional mean
    masses. ``log(line)`` gets what cannot be checked, a ``warning:`` line per way the box differs from the training
    runs (cosmology, haloes beyond the training range) and a summary, with the scores against the truth when the
    fields hold it. `ValidationError` naming ``where`` for fields the model cannot paint: missing channels, another
    voxel size or particle resolution, haloes painted by another assignment, or a per-voxel model file.
    """
    say = log or (lambda line: None)
    missing = [c for c in ("log_dm", "log_halo") if c not in fields.channels]
    if missing:
        raise ValidationError(
            f"fields lack channel(s) {missing} (make them with paint.fields); they have {list(fields.channels)}",
            context=where,
        )
    network, meta = load_paint_model(model or None)
    if not isinstance(network, Dm2GalFCN):
        raise ValidationError(
            f"{model}: a per-voxel dm2gal model needs the true galaxy positions; give a successor (fcn) model",
            context=where,
        )
    check_voxel(voxel_size(fields), meta, where)
    recorded = fields.meta.get("particle_mass")
    particle_mass = None if recorded is None else float(recorded)
    for note in unchecked_notes(meta, particle_mass=particle_mass):
        say(note)
    for note in domain_notes(meta, particle_mass=particle_mass, cosmology=fields.box.cosmology, where=where):
        say(f"warning: {note}")
    trained_on, given = meta.get("halo_assignment", "cic"), fields.meta.get("assignment_log_halo")
    if given is not None and given != trained_on:
        raise ValidationError(
            f"the fields' halo channel is painted by {given!r} but the model was trained on {trained_on!r} "
            f"haloes; paint the fields with paint.fields halo_assignment = {trained_on!r}",
            context=where,
        )
    if not model:
        say(f"using the shipped successor ({DEFAULT_MODEL.name}, see its MODEL_CARD.md)")
    index = {c: i for i, c in enumerate(fields.channels)}
    inputs = fields.values[[index["log_dm"], index["log_halo"]]].float()
    note = extrapolation_note(inputs[1], meta)
    if note is not None:
        say(f"warning: {note}")
    out = predict_tiled(network.to(inputs.device), inputs, tile=tile, map_tasks=map_tasks)
    occupied = network.occupied(out[Dm2GalFCN.OCCUPANCY])
    log_mstar = network.paint(out, generator, occupied=occupied)
    threshold = float(meta["threshold"])
    painted = Field(
        values=log_mstar[None],
        box=fields.box,
        channels=("log_mstar",),
        units=(LOG_UNIT,),
        meta={"model": str(model or DEFAULT_MODEL.name), "threshold": threshold},
    )
    voxels = torch.nonzero(occupied)
    n = fields.values.shape[-1]
    galaxies = GalaxyCatalog(
        columns={
            "pos": cell_centers(ijk_to_ids(voxels, n), n, fields.box.length),
            "log_mstar": from_log_mass(log_mstar[occupied]).clamp_min(1.0).log10().double(),
        },
        box=fields.box,
    )
    say(f"{len(voxels)} occupied voxels of {n}^3, total M* {float(from_log_mass(log_mstar).sum()):.3g} Msun/h")
    painted_mass = from_log_mass(log_mstar.to(torch.float64))
    truth = from_log_mass(fields.values[index["log_mstar"]].to(torch.float64)) if "log_mstar" in index else None
    power, power_truth = (stellar_power_table(mass, fields.box.length) for mass in (painted_mass, truth))
    if truth is not None:
        s = score_painting(painted_mass, truth, fields.box.length, threshold=threshold)
        say(
            f"vs the truth: mean |ln P/P_truth| {s.power_score:.3f} (k <= k_Ny/4), total M* ratio "
            f"{s.total_mass_ratio:.3f}, occupied voxels precision {s.precision:.3f} recall {s.recall:.3f}"
        )
    if not catalog:
        galaxies = galaxies.select(torch.zeros(0, dtype=torch.long))
    return Painting(painted, galaxies, power, power_truth)
