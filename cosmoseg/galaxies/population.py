"""Centrals and satellites for every halo, all learned from one training catalog: a galaxy population model.

A :class:`PopulationModel` is what a mock needs to put galaxies into the haloes of a gravity-only run:

* **occupation**: the Zheng et al. (2007) HOD fitted to the training catalog's central fraction and mean
  satellite count per halo mass (:func:`cosmoseg.galaxies.hod_fit.fit_zheng07`);
* **satellite positions**: an NFW profile of concentration ``concentration_factor`` × c(M) (Duffy et al. 2008),
  truncated at ``truncation`` × r200m, both fitted by maximum likelihood to the training satellites' distances
  r / r200m from their host's centre (r200m: 200 times the mean matter density, from the host mass);
* **velocities**: host velocity plus ``alpha_c`` (centrals) / ``alpha_s`` (satellites) times the host's isothermal
  1-D dispersion sqrt(G M / (2 a r200m)) per axis, both fitted to the training galaxies' velocities;
* **properties**: a central sampler p(galaxy | halo) and a satellite sampler p(galaxy | host halo, r / r200m)
  (any :mod:`cosmoseg.galaxies.samplers` method, the conditional normalizing flow by default), fitted on the
  centrals and the satellites of the training catalog.

Every halo quantity the model uses is derived from the halo mass the same way in training and in use (r200m,
c(M), σ), so a model trained on one halo finder's catalog applies to another's haloes of the same mass
definition (FoF masses of a hydro run's groups and of a gravity-only run, for instance). Halo properties the
samplers condition on beyond the mass must be columns of the catalog the model is used on; a catalog without
them is refused by name (:func:`populate_galaxies`), never filled in.

The file (:meth:`PopulationModel.save` / :func:`load_population`) is one ``torch.save`` payload of plain values and
tensors, read with ``weights_only=True``, with a model card (data, command, metrics).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog
from cosmoseg.data.hdf5 import atomic_write
from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.galaxies.features import DEFAULT_GALAXY_PROPERTIES, central_pairs, property_matrix
from cosmoseg.galaxies.hod import HODParams, concentration_duffy08, populate, prepare_hod, r200_from_mass
from cosmoseg.galaxies.hod_fit import fit_zheng07
from cosmoseg.galaxies.samplers.base import JointSampler, sampler_class, sampler_from_payload

__all__ = [
    "DEFAULT_POPULATION_CONDITIONS",
    "POPULATION_FORMAT",
    "SATELLITE_RADIUS",
    "PopulationModel",
    "fit_population",
    "load_population",
    "populate_galaxies",
    "satellite_radii",
]

POPULATION_FORMAT = "cosmoseg.population"
POPULATION_VERSION = 1
DEFAULT_POPULATION_CONDITIONS: tuple[str, ...] = ("log_mass",)
"""Halo properties the samplers condition on by default: the mass alone, which every halo catalog has."""
SATELLITE_RADIUS = "r_over_r200m"
"""The extra condition of the satellite sampler: the satellite's distance from its host's centre over r200m."""
MIN_SATELLITES = 20
"""Fewest training satellites for a satellite sampler and profile."""
_FACTOR_GRID = np.geomspace(0.05, 20.0, 241)


@dataclasses.dataclass
class PopulationModel:
    """A fitted galaxy population model (see the module docstring).

    occupation: the Zheng07 parameters, with ``alpha_c`` and ``alpha_s`` the fitted velocity biases.
    concentration_factor: satellites' NFW concentration over Duffy et al.'s c(M).
    truncation: the profile's outer radius over r200m.
    central, satellite: the property samplers; ``satellite.condition_names`` are the central's plus
        :data:`SATELLITE_RADIUS`.
    card: data, command, metrics.
    """

    occupation: HODParams
    concentration_factor: float
    truncation: float
    central: JointSampler
    satellite: JointSampler
    card: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def condition_names(self) -> list[str]:
        """The halo properties the model needs from a catalog (besides pos, vel and mass)."""
        return list(self.central.condition_names)

    @property
    def target_names(self) -> list[str]:
        return list(self.central.target_names)

    def save(self, path: str | os.PathLike[str], *, card: Mapping[str, Any] | None = None) -> Path:
        """Write the model atomically; ``card``: data, command, metrics (default: ``self.card``)."""
        payload = {
            "format": POPULATION_FORMAT,
            "version": POPULATION_VERSION,
            "occupation": dataclasses.asdict(self.occupation),
            "concentration_factor": float(self.concentration_factor),
            "truncation": float(self.truncation),
            "central": self.central.payload(),
            "satellite": self.satellite.payload(),
            "card": dict(card if card is not None else self.card),
        }
        return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_population(path: str | os.PathLike[str]) -> PopulationModel:
    """A population model written by :meth:`PopulationModel.save` (``weights_only=True``); ArtifactError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such population model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise ArtifactError(f"{path}: not a readable model file ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != POPULATION_FORMAT:
        what = payload.get("format") if isinstance(payload, dict) else None
        if what == "cosmoseg.sampler":
            raise ArtifactError(
                f"{path}: a sampler of central galaxies only, not a population model (centrals and satellites); "
                "train one with `cosmoseg galaxies train ... --satellites`"
            )
        raise ArtifactError(f"{path}: not a cosmoseg population model file")
    if payload.get("version") != POPULATION_VERSION:
        raise ArtifactError(f"{path}: population model version {payload.get('version')!r}, expected 1")
    return PopulationModel(
        occupation=HODParams(**payload["occupation"]),
        concentration_factor=float(payload["concentration_factor"]),
        truncation=float(payload["truncation"]),
        central=sampler_from_payload(payload["central"], f"{path} (central sampler)"),
        satellite=sampler_from_payload(payload["satellite"], f"{path} (satellite sampler)"),
        card=dict(payload.get("card") or {}),
    )


# ---- the geometry of satellites ----------------------------------------------------------------------------


def satellite_radii(halos: HaloCatalog, galaxies: GalaxyCatalog, rows: torch.Tensor) -> npt.NDArray[np.float64]:
    """(S,) distances of galaxies ``rows`` from their host's centre over the host's r200m (periodic box)."""
    host = galaxies["host"][rows].long().cpu().numpy()
    length = halos.box.length
    delta = galaxies["pos"][rows].double().cpu().numpy() - halos["pos"].double().cpu().numpy()[host]
    delta -= length * np.round(delta / length)
    r200 = r200_from_mass(halos["mass"].double().cpu().numpy()[host], halos.box)
    return np.linalg.norm(delta, axis=1) / r200


def _nfw_m(y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.log1p(y) - y / (1.0 + y)


def _profile_log_likelihood(x: npt.NDArray[np.float64], c: npt.NDArray[np.float64], truncation: float) -> float:
    """Σ log p(x | c) of an NFW profile of concentration c (r200m units) truncated at ``truncation`` r200m.

    p(x) dx ∝ x² / (c x (1 + c x)²) dx on [0, X], normalised by m(c X) / c³.
    """
    return float(np.sum(np.log(x) - 2.0 * np.log1p(c * x) + 2.0 * np.log(c) - np.log(_nfw_m(c * truncation))))


def fit_satellite_profile(x: npt.ArrayLike, mass: npt.ArrayLike, redshift: float) -> tuple[float, float]:
    """(concentration_factor, truncation) of the satellites' distances ``x`` = r / r200m from hosts of ``mass``.

    truncation: the largest x rounded up to 0.05 (at least 0.1); the factor maximises the truncated NFW likelihood
    with c = factor × c_Duffy(M) over a log grid of 0.05–20, refined by a parabola through the best three points.
    """
    x = np.asarray(x, np.float64)
    if x.size < MIN_SATELLITES:
        raise ValidationError(f"{x.size} satellites: at least {MIN_SATELLITES} are needed to fit their profile")
    x = np.maximum(x, 1e-4)
    truncation = max(math.ceil(float(x.max()) * 20.0) / 20.0, 0.1)
    c_duffy = concentration_duffy08(np.asarray(mass, np.float64), redshift)
    scores = np.array([_profile_log_likelihood(x, f * c_duffy, truncation) for f in _FACTOR_GRID])
    best = int(np.argmax(scores))
    if 0 < best < len(_FACTOR_GRID) - 1:
        lo, mid, hi = scores[best - 1 : best + 2]
        step = np.log(_FACTOR_GRID[1] / _FACTOR_GRID[0])
        curvature = lo - 2 * mid + hi
        shift = 0.5 * (lo - hi) / curvature if curvature < 0 else 0.0
        return float(_FACTOR_GRID[best] * math.exp(shift * step)), truncation
    return float(_FACTOR_GRID[best]), truncation


def _velocity_bias(halos: HaloCatalog, galaxies: GalaxyCatalog, rows: torch.Tensor) -> float:
    """sqrt(Σ|v - v_host|² / (3 Σ σ²)) of galaxies ``rows``: the α of ``v = v_host + α σ N(0, 1)`` per axis,
    σ the host's isothermal dispersion (as :func:`cosmoseg.galaxies.hod.prepare_hod` computes it from the mass)."""
    if rows.numel() == 0:
        return 0.0
    host = galaxies["host"][rows].long()
    bare = _bare_halos(halos.select(host), velocities=True)
    sigma = prepare_hod(bare, velocities=True).sigma_1d
    dv = (galaxies["vel"][rows].double() - halos["vel"][host].double()).cpu().numpy()
    return float(math.sqrt(np.sum(dv**2) / (3.0 * np.sum(sigma**2))))


def _bare_halos(halos: HaloCatalog, *, velocities: bool) -> HaloCatalog:
    """The haloes with pos, mass (and vel), so that r200, c and σ all follow from the mass."""
    names = ("pos", "mass", "vel") if velocities else ("pos", "mass")
    return HaloCatalog(columns={n: halos[n] for n in names}, box=halos.box)


# ---- fitting -----------------------------------------------------------------------------------------------


def _fit_sampler(
    method: str,
    conditions: Sequence[str],
    targets: Sequence[str],
    x: torch.Tensor,
    y: torch.Tensor,
    hyper: Mapping[str, Any],
    generator: torch.Generator,
) -> JointSampler:
    sampler = sampler_class(method)(list(conditions), list(targets), **dict(hyper))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread avoids oversubscription on shared cores
    try:
        sampler.fit(x, y, generator=generator)
    finally:
        torch.set_num_threads(threads)
    return sampler


def fit_population(
    halos: HaloCatalog,
    galaxies: GalaxyCatalog,
    *,
    conditions: Sequence[str] = DEFAULT_POPULATION_CONDITIONS,
    targets: Sequence[str] = DEFAULT_GALAXY_PROPERTIES,
    method: str = "flow",
    hyper: Mapping[str, Any] | None = None,
    satellite_hyper: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> PopulationModel:
    """Fit a :class:`PopulationModel` to ``galaxies`` living in ``halos`` (``host`` = row of the host,
    ``is_central``), e.g. a hydro run's subhaloes with stars in its FoF groups, or the galaxy model's truth.

    conditions: halo properties (columns or ``log_<column>``) the property samplers condition on.
    targets: galaxy properties they draw. method, hyper: the sampler method and its hyper-parameters
    (``satellite_hyper`` for the satellite sampler; default: ``hyper``). seed: of the fits.
    Velocity biases are fitted when both catalogs have ``vel``; otherwise they are 0 (centrals) and 1 (satellites).
    """
    missing = [c for c in ("host", "is_central") if c not in galaxies]
    if missing:
        raise ValidationError(f"the training galaxies lack {missing}: a population model needs hosts and centrals")
    occupation = fit_zheng07(halos, galaxies)
    central = galaxies["is_central"].bool()
    sat_rows = torch.nonzero(~central).reshape(-1)
    cen_rows = torch.nonzero(central).reshape(-1)
    if len(sat_rows) < MIN_SATELLITES:
        raise ValidationError(
            f"the training catalog has {len(sat_rows)} satellites; at least {MIN_SATELLITES} are needed to learn "
            "their numbers, positions and properties"
        )
    host_mass = halos["mass"].double().cpu().numpy()[galaxies["host"][sat_rows].long().cpu().numpy()]
    radii = satellite_radii(halos, galaxies, sat_rows)
    factor, truncation = fit_satellite_profile(radii, host_mass, halos.box.redshift)
    alpha_c, alpha_s = 0.0, 1.0
    if "vel" in halos and "vel" in galaxies:
        alpha_c = _velocity_bias(halos, galaxies, cen_rows)
        alpha_s = _velocity_bias(halos, galaxies, sat_rows)
    occupation = occupation.clone(alpha_c=alpha_c, alpha_s=alpha_s)

    halo_x = property_matrix(halos, conditions, role="training halo catalog")
    galaxy_y = property_matrix(galaxies, targets, role="training galaxy catalog")
    halo_rows, galaxy_rows = central_pairs(halos, galaxies)
    generator = torch.Generator().manual_seed(seed)
    central_sampler = _fit_sampler(
        method, conditions, targets, halo_x[halo_rows], galaxy_y[galaxy_rows], hyper or {}, generator
    )
    sat_x = torch.cat([halo_x[galaxies["host"][sat_rows].long()], torch.from_numpy(radii).float()[:, None]], 1)
    satellite_sampler = _fit_sampler(
        method,
        [*conditions, SATELLITE_RADIUS],
        targets,
        sat_x,
        galaxy_y[sat_rows],
        satellite_hyper if satellite_hyper is not None else (hyper or {}),
        generator,
    )
    return PopulationModel(
        occupation=occupation,
        concentration_factor=factor,
        truncation=truncation,
        central=central_sampler,
        satellite=satellite_sampler,
    )


# ---- use ---------------------------------------------------------------------------------------------------


def _condition_problems(model: PopulationModel, halos: HaloCatalog, where: str) -> list[str]:
    missing = [
        name
        for name in model.condition_names
        if name not in halos.columns and not (name.startswith("log_") and name[4:] in halos.columns)
    ]
    if not missing:
        return []
    return [
        f"{where} was trained on halo propert(ies) {missing} that the halo catalog does not have (its columns: "
        f"{', '.join(sorted(halos.columns))}); use haloes that have them (e.g. FoF haloes of the snapshot, "
        "sim.fof), or a model trained on properties the catalog has (--conditions log_mass)"
    ]


def populate_galaxies(
    model: PopulationModel,
    halos: HaloCatalog,
    *,
    seed: int,
    generator: torch.Generator,
    min_mass: float = 0.0,
    where: str = "the population model",
) -> GalaxyCatalog:
    """Centrals and satellites for the haloes of ``halos`` heavier than ``min_mass`` (Msun/h).

    Occupations, positions and velocities come from the fitted HOD and profile (counter-based random numbers of
    ``seed``: a halo's galaxies do not depend on the rest of the catalog); properties from the samplers
    (``generator``). Columns: ``pos`` (N_g, 3) Mpc/h, ``vel`` (N_g, 3) km/s (when the haloes have velocities),
    ``is_central``, ``host`` (row in ``halos``), ``r_over_r200m`` (0 for centrals) and the model's targets.
    A catalog without the halo properties the samplers need is a ValidationError naming them (``where`` names
    the model in it).
    """
    problems = _condition_problems(model, halos, where)
    if problems:
        raise ValidationError(problems)
    keep = torch.nonzero(halos["mass"] >= min_mass).reshape(-1)
    chosen = halos.select(keep)
    velocities = "vel" in chosen
    prepared = prepare_hod(_bare_halos(chosen, velocities=velocities), velocities=velocities)
    c = concentration_duffy08(prepared.mass, halos.box.redshift) * model.concentration_factor
    prepared = dataclasses.replace(prepared, r200=prepared.r200 * model.truncation, concentration=c * model.truncation)
    drawn = populate(prepared, model.occupation, seed)
    host = drawn["host"].long().cpu()
    central = drawn["is_central"].bool().cpu()
    x = property_matrix(chosen, model.condition_names, role="halo catalog").cpu()
    radii = torch.zeros(len(drawn), dtype=torch.float32)
    sat = torch.nonzero(~central).reshape(-1)
    cen = torch.nonzero(central).reshape(-1)
    shifted = dataclasses.replace(drawn, columns={**drawn.columns, "host": host})
    if len(sat):
        radii[sat] = torch.from_numpy(satellite_radii(chosen, shifted, sat)).float()
    n_targets = len(model.target_names)
    props = torch.zeros(len(drawn), n_targets, dtype=torch.float32)
    if len(cen):
        props[cen] = model.central.sample(x[host[cen]], 1, generator=generator)[0].float()
    if len(sat):
        sat_x = torch.cat([x[host[sat]], radii[sat, None]], 1)
        props[sat] = model.satellite.sample(sat_x, 1, generator=generator)[0].float()
    device = halos["pos"].device
    columns: dict[str, torch.Tensor] = {name: drawn[name] for name in ("pos", "vel") if name in drawn}
    columns["is_central"] = central.to(device)
    columns["host"] = keep[host].to(device)
    columns[SATELLITE_RADIUS] = radii.to(device)
    columns |= {name: props[:, j].to(device) for j, name in enumerate(model.target_names)}
    meta = {
        "model": "population",
        "seed": int(seed),
        "min_mass": float(min_mass),
        "concentration_factor": model.concentration_factor,
        "truncation": model.truncation,
    }
    meta |= {
        f"hod_{k}": float(v) for k, v in dataclasses.asdict(model.occupation).items() if k != "modulate_satellites"
    }
    return GalaxyCatalog(columns=columns, box=halos.box, meta=meta)
