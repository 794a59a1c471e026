"""Halo and galaxy properties as matrices for the samplers, and central galaxies paired with their host haloes.

Property names are catalog columns, or ``log_<column>``: log10 of a positive column (``log_mass`` = log10 of
``mass`` in Msun/h, ``log_vmax``, ...), so samplers can be conditioned on logarithms without new catalog columns.

Missing values (docs/data-model.md): a column that can lack a value has a boolean ``<column>_resolved`` mask beside
it and holds 0 where the mask is False. A property named by the column itself is used as stored, 0 where missing
(the shipped ``flow.pt`` was trained that way on ``concentration``); ``log_<column>`` of a column with missing rows has
no value there and is refused, naming the column, the number of missing rows and the ways out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cosmoseg.data import Catalog, GalaxyCatalog, HaloCatalog
from cosmoseg.data.table import MISSING_FILL, resolved_column
from cosmoseg.errors import ValidationError

__all__ = [
    "DEFAULT_GALAXY_PROPERTIES",
    "DEFAULT_HALO_PROPERTIES",
    "central_pairs",
    "central_rows",
    "property_matrix",
]

DEFAULT_HALO_PROPERTIES = ("log_mass", "log_vmax", "concentration", "spin", "log_env_density_r2")
"""Halo properties the samplers condition on by default (Abramo et al. use mass, V_max, concentration, spin and
environment-like quantities): those of the shipped ``flow.pt``. ``concentration`` and ``spin`` enter as stored, 0
where the FoF catalog has no value (``concentration_resolved`` / ``spin_resolved`` False), so the defaults work on
every FoF catalog, small haloes included."""
DEFAULT_GALAXY_PROPERTIES = ("log_mstar", "log_ssfr", "color_gi", "log_radius", "log_z")
"""The five central-galaxy properties of Abramo et al.: stellar mass, sSFR, g − i colour, radius, metallicity."""


def _column(catalog: Catalog, name: str, role: str, problems: list[str]) -> torch.Tensor | None:
    if name in catalog.columns:
        value = catalog.columns[name]
    elif name.startswith("log_") and name[4:] in catalog.columns:
        column = name[4:]
        raw = catalog.columns[column].double()
        mask_name = resolved_column(column)
        if mask_name in catalog.columns and raw.ndim == 1:
            n_missing = int((~catalog.resolved(column)).sum())
            if n_missing:
                problems.append(
                    f"{name}: column {column!r} of the {role} is missing (stored as {MISSING_FILL:g}, {mask_name!r} "
                    f"False) in {n_missing} of {len(catalog)} rows, which have no logarithm; condition on "
                    f"{column!r} itself (0 where missing, as the shipped flow.pt does), or keep only the rows where "
                    f"{mask_name!r} is True"
                )
                return None
        bad = int((raw <= 0).sum())
        if bad:
            problems.append(f"{name}: column {column!r} of the {role} has {bad} value(s) <= 0 (no logarithm)")
            return None
        value = torch.log10(raw)
    else:
        return None
    if value.ndim != 1:
        problems.append(f"{name}: column of the {role} has shape {tuple(value.shape)}; a per-row scalar is needed")
        return None
    return value.to(torch.float32)


def property_matrix(catalog: Catalog, names: Sequence[str], *, role: str = "catalog") -> torch.Tensor:
    """``(N, len(names))`` float32 matrix of the properties ``names`` (columns or ``log_<column>``).

    Every missing property and every bad value is named in one `ValidationError`.
    """
    problems: list[str] = []
    missing = [n for n in names if n not in catalog.columns and not (n.startswith("log_") and n[4:] in catalog.columns)]
    if missing:
        problems.append(f"the {role} lacks the propert(ies) {missing} (it has columns {sorted(catalog.columns)})")
    parts = [_column(catalog, n, role, problems) for n in names if n not in missing]
    if problems:
        raise ValidationError(problems)
    return torch.stack([p for p in parts if p is not None], dim=1) if parts else torch.zeros((len(catalog), 0))


def central_pairs(halos: HaloCatalog, galaxies: GalaxyCatalog) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices ``(halo_rows, galaxy_rows)`` of the central galaxies and their host haloes.

    The galaxy catalog needs ``host`` (int, the row of the host in ``halos``) and ``is_central`` (bool).
    """
    problems = [f"the galaxy catalog lacks column {c!r}" for c in ("host", "is_central") if c not in galaxies.columns]
    if problems:
        raise ValidationError(problems)
    central = galaxies["is_central"].bool()
    host = galaxies["host"].long()
    out_of_range = int(((host < 0) | (host >= len(halos)))[central].sum())
    if out_of_range:
        raise ValidationError(f"{out_of_range} central(s) have a host row outside 0..{len(halos) - 1}")
    rows = torch.nonzero(central).reshape(-1)
    return host[rows], rows


def central_rows(
    halos: HaloCatalog,
    galaxies: GalaxyCatalog,
    halo_properties: Sequence[str],
    galaxy_properties: Sequence[str],
    *,
    roles: tuple[str, str] = ("halo catalog", "galaxy catalog"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows a sampler learns from: ``(N, C)`` properties of the hosts and ``(N, D)`` of their centrals, paired by
    :func:`central_pairs`. ``roles`` name the two catalogs in errors (:func:`property_matrix`)."""
    halo_rows, galaxy_rows = central_pairs(halos, galaxies)
    return (
        property_matrix(halos, halo_properties, role=roles[0])[halo_rows],
        property_matrix(galaxies, galaxy_properties, role=roles[1])[galaxy_rows],
    )
