"""Halo and galaxy properties as matrices for the samplers, and central galaxies paired with their host haloes.

Property names are catalog columns, or ``log_<column>``: log10 of a positive column (``log_mass`` = log10 of
``mass`` in Msun/h, ``log_vmax``, ``log_concentration``, ...), so samplers can be conditioned on logarithms without
new catalog columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cosmoseg.data import Catalog, GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError

__all__ = ["DEFAULT_GALAXY_PROPERTIES", "DEFAULT_HALO_PROPERTIES", "central_pairs", "property_matrix"]

DEFAULT_HALO_PROPERTIES = ("log_mass", "log_vmax", "log_concentration", "spin", "log_env_density_r2")
"""Halo properties the samplers condition on by default (Abramo et al. use mass, V_max, concentration, spin and
environment-like quantities)."""
DEFAULT_GALAXY_PROPERTIES = ("log_mstar", "log_ssfr", "color_gi", "log_radius", "log_z")
"""The five central-galaxy properties of Abramo et al.: stellar mass, sSFR, g − i colour, radius, metallicity."""


def _column(catalog: Catalog, name: str, role: str, problems: list[str]) -> torch.Tensor | None:
    if name in catalog.columns:
        value = catalog.columns[name]
    elif name.startswith("log_") and name[4:] in catalog.columns:
        raw = catalog.columns[name[4:]].double()
        bad = int((raw <= 0).sum())
        if bad:
            problems.append(f"{name}: column {name[4:]!r} of the {role} has {bad} value(s) <= 0 (no logarithm)")
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
