"""The mock galaxy catalog: galaxies in a run's haloes, with their hosts and redshift-space positions.

:func:`mock_catalog` turns the galaxies a population model, the galaxy model or an HOD put into haloes into the
catalog ``cosmoseg mock`` writes (one layout whatever made the galaxies; ``docs/mock.md`` documents it):

=================  ==========  =================================================================================
column             shape       meaning (units)
=================  ==========  =================================================================================
``pos``            (N, 3)      comoving position, Mpc/h, in [0, L)
``vel``            (N, 3)      peculiar velocity, km/s (when the haloes have velocities)
``pos_rsd``        (N, 3)      redshift-space position along ``rsd_axis`` (distant observer), Mpc/h, in [0, L)
``is_central``     (N,)        True for the central galaxy of its host
``host``           (N,)        row of the host in the halo catalog (int64)
``host_mass``      (N,)        mass of the host, Msun/h (the halo catalog's ``mass``: FoF for FoF haloes)
``log_mstar`` ...  (N,)        the galaxy properties the model draws: log_mstar (log10 Msun/h), log_ssfr
                               (log10 1/yr), color_gi (mag), log_radius (log10 kpc/h), log_z (log10 Z/Zsun)
=================  ==========  =================================================================================

Rows come host by host, the central first.
"""

from __future__ import annotations

import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ProblemCollector, ValidationError
from cosmoseg.galaxies.features import DEFAULT_GALAXY_PROPERTIES
from cosmoseg.measure.power import redshift_space_positions

__all__ = ["CATALOG_COLUMNS", "mock_catalog"]

CATALOG_COLUMNS: tuple[str, ...] = ("pos", "vel", "pos_rsd", "is_central", "host", "host_mass")
"""The columns every mock catalog has (``vel`` and ``pos_rsd`` when velocities are known), before the properties."""

AXES = "xyz"


def mock_catalog(galaxies: GalaxyCatalog, halos: HaloCatalog, *, rsd_axis: int = 2) -> GalaxyCatalog:
    """The documented mock catalog (module docstring) of ``galaxies`` hosted by ``halos``.

    rsd_axis: line of sight of ``pos_rsd`` (0, 1, 2), or -1 for none.
    Raises ValidationError when the galaxies lack hosts, point outside the halo catalog, or live in another box.
    """
    problems = ProblemCollector()
    for name in ("host", "is_central"):
        problems.check(name in galaxies, f"the galaxies have no column {name!r} (it has {sorted(galaxies.columns)})")
    problems.check(
        abs(galaxies.box.length - halos.box.length) <= 1e-6 * halos.box.length,
        f"the galaxies are in a box of {galaxies.box.length:g} Mpc/h, their haloes in {halos.box.length:g} Mpc/h",
    )
    problems.check(rsd_axis in (-1, 0, 1, 2), f"rsd_axis must be -1 (none), 0, 1 or 2, got {rsd_axis}")
    problems.raise_if_any(ValidationError, context="mock catalog")
    host = galaxies["host"].long()
    if len(host) and (int(host.min()) < 0 or int(host.max()) >= len(halos)):
        raise ValidationError(
            f"galaxy hosts span [{int(host.min())}, {int(host.max())}], outside the {len(halos)} haloes"
        )
    columns: dict[str, torch.Tensor] = {"pos": galaxies["pos"]}
    source = galaxies.meta.get("model", galaxies.meta.get("galaxy_model", ""))
    meta: dict[str, str | int | float | bool] = {"rsd_axis": rsd_axis, "source": str(source)}
    if "vel" in galaxies:
        columns["vel"] = galaxies["vel"]
        if rsd_axis >= 0:
            columns["pos_rsd"] = redshift_space_positions(galaxies["pos"], galaxies["vel"], galaxies.box, rsd_axis)
            meta["line_of_sight"] = AXES[rsd_axis]
    columns["is_central"] = galaxies["is_central"].bool()
    columns["host"] = host
    columns["host_mass"] = halos["mass"].to(galaxies["pos"].device)[host]
    columns |= {name: galaxies[name] for name in DEFAULT_GALAXY_PROPERTIES if name in galaxies}
    n_central = int(columns["is_central"].sum())
    meta |= {"n_galaxies": len(host), "n_centrals": n_central, "n_satellites": len(host) - n_central}
    meta["number_density"] = len(host) / galaxies.box.length**3
    units = {"pos_rsd": "Mpc/h", "host_mass": "Msun/h", "host": "", "is_central": ""}
    return GalaxyCatalog(
        columns=columns, units={k: v for k, v in units.items() if k in columns}, box=galaxies.box, meta=meta
    )
