"""Centrals and satellites for every halo, all learned from one training catalog: a galaxy population model.

A :class:`PopulationModel` is what a mock needs to put galaxies into the haloes of a gravity-only run:

* **occupation**: the Zheng et al. (2007) HOD fitted to the training catalog's central fraction and mean
  satellite count per halo mass (:func:`cosmoseg.galaxies.hod_fit.fit_zheng07`);
* **satellite positions**: isotropic around the host's centre, at distances r / r200m drawn from the training
  satellites' own distribution of r / r200m (its quantiles in bins of host mass; r200m: the radius enclosing 200
  times the mean matter density, from the host mass). No profile shape is imposed: whatever the training run's
  satellites follow (an NFW of some concentration, a truncation at r200c or at the FoF boundary) is reproduced;
* **velocities**: host velocity plus ``alpha_c`` (centrals) / ``alpha_s`` (satellites) times the host's isothermal
  1-D dispersion sqrt(G M / (2 a r200m)) per axis, both fitted to the training galaxies' velocities;
* **properties**: a central sampler p(galaxy | halo) and a satellite sampler p(galaxy | host halo, r / r200m)
  (any :mod:`cosmoseg.galaxies.samplers` method, the conditional normalizing flow by default), fitted on the
  centrals and the satellites of the training catalog.

Every halo quantity the model uses is derived from the halo mass the same way in training and in use (r200m, σ),
so a model trained on one halo finder's catalog applies to another's haloes of the same mass
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
from cosmoseg.galaxies.hod import HODParams, populate, prepare_hod, r200_from_mass
from cosmoseg.galaxies.hod_fit import fit_zheng07
from cosmoseg.galaxies.samplers.base import JointSampler, sampler_class, sampler_from_payload

__all__ = [
    "DEFAULT_POPULATION_CONDITIONS",
    "POPULATION_FORMAT",
    "SATELLITE_RADIUS",
    "PopulationModel",
    "concatenate_boxes",
    "evaluate_population",
    "fit_population",
    "fit_radial_distribution",
    "load_population",
    "populate_galaxies",
    "satellite_radii",
    "split_by_halo",
]

POPULATION_FORMAT = "cosmoseg.population"
POPULATION_VERSION = 1
DEFAULT_POPULATION_CONDITIONS: tuple[str, ...] = ("log_mass",)
"""Halo properties the samplers condition on by default: the mass alone, which every halo catalog has."""
SATELLITE_RADIUS = "r_over_r200m"
"""The extra condition of the satellite sampler: the satellite's distance from its host's centre over r200m."""
MIN_SATELLITES = 20
"""Fewest training satellites for a satellite sampler and profile."""
RADIAL_LEVELS = 65
"""Quantiles of r / r200m kept per host-mass bin (at levels 0, 1/64, ..., 1)."""
RADIAL_BIN_SATELLITES = 500
"""Training satellites per host-mass bin of the radial distribution (at most ``MAX_RADIAL_BINS`` bins)."""
MAX_RADIAL_BINS = 6


@dataclasses.dataclass
class PopulationModel:
    """A fitted galaxy population model (see the module docstring).

    occupation: the Zheng07 parameters, with ``alpha_c`` and ``alpha_s`` the fitted velocity biases.
    radial_edges: (B - 1,) log10 host masses (Msun/h) between the B host-mass bins of the radial distribution.
    radial_quantiles: (B, RADIAL_LEVELS) quantiles of r / r200m of the training satellites of each bin.
    central, satellite: the property samplers; ``satellite.condition_names`` are the central's plus
        :data:`SATELLITE_RADIUS`.
    card: data, command, metrics.
    """

    occupation: HODParams
    radial_edges: list[float]
    radial_quantiles: list[list[float]]
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
            "radial_edges": torch.tensor(self.radial_edges, dtype=torch.float64),
            "radial_quantiles": torch.tensor(self.radial_quantiles, dtype=torch.float64),
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
        radial_edges=[float(v) for v in payload["radial_edges"]],
        radial_quantiles=[[float(v) for v in row] for row in payload["radial_quantiles"]],
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


def fit_radial_distribution(x: npt.ArrayLike, host_log_mass: npt.ArrayLike) -> tuple[list[float], list[list[float]]]:
    """(edges, quantiles): the distribution of satellites' r / r200m ``x`` in bins of equal numbers of satellites
    in host log10 mass (``RADIAL_BIN_SATELLITES`` each, 1 to ``MAX_RADIAL_BINS`` bins), as ``RADIAL_LEVELS``
    quantiles per bin; ``edges`` are the B - 1 log-mass boundaries."""
    x, lm = np.asarray(x, np.float64), np.asarray(host_log_mass, np.float64)
    if x.size < MIN_SATELLITES:
        raise ValidationError(f"{x.size} satellites: at least {MIN_SATELLITES} are needed to fit their profile")
    n_bins = int(min(MAX_RADIAL_BINS, max(1, x.size // RADIAL_BIN_SATELLITES)))
    edges = np.quantile(lm, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]) if n_bins > 1 else np.zeros(0)
    which = np.searchsorted(edges, lm, side="right")
    levels = np.linspace(0.0, 1.0, RADIAL_LEVELS)
    quantiles = [np.quantile(x[which == b], levels).tolist() for b in range(n_bins)]
    return edges.tolist(), quantiles


def _radial_draw(
    model: PopulationModel, u: npt.NDArray[np.float64], host_log_mass: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """r / r200m of satellites at uniforms ``u`` (inverse CDF of their host-mass bin, linear between quantiles)."""
    which = np.searchsorted(np.asarray(model.radial_edges), host_log_mass, side="right")
    levels = np.linspace(0.0, 1.0, RADIAL_LEVELS)
    out = np.empty_like(u)
    for b, row in enumerate(model.radial_quantiles):
        rows = which == b
        out[rows] = np.interp(u[rows], levels, row)
    return out


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
    """The haloes with pos, mass (and vel, and their ``id`` that keys the random numbers), so that r200, c and σ all
    follow from the mass."""
    names = ("pos", "mass", "vel") if velocities else ("pos", "mass")
    names += ("id",) if "id" in halos else ()
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
    radial_edges, radial_quantiles = fit_radial_distribution(radii, np.log10(host_mass))
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
        radial_edges=radial_edges,
        radial_quantiles=radial_quantiles,
        central=central_sampler,
        satellite=satellite_sampler,
    )


# ---- use ---------------------------------------------------------------------------------------------------


def _place_satellites(model: PopulationModel, drawn: GalaxyCatalog, prepared: Any) -> GalaxyCatalog:
    """``drawn`` with each satellite moved along its direction from the host to the fitted r / r200m."""
    satellite = ~drawn["is_central"].bool().cpu().numpy()
    if not satellite.any():
        return drawn
    host = drawn["host"].long().cpu().numpy()[satellite]
    length = prepared.box.length
    pos = drawn["pos"].double().cpu().numpy()
    delta = pos[satellite] - prepared.pos[host]
    delta -= length * np.round(delta / length)
    r = np.linalg.norm(delta, axis=1)
    s = np.clip(r / prepared.r200[host], 0.0, 1.0)
    u = (np.log1p(s) - s / (1.0 + s)) / (math.log(2.0) - 0.5)  # NFW (c = 1) enclosed fraction at s
    x = _radial_draw(model, np.clip(u, 0.0, 1.0), prepared.log_mass[host])
    direction = delta / np.maximum(r, 1e-300)[:, None]
    pos[satellite] = prepared.pos[host] + direction * (x * prepared.r200[host])[:, None]
    new_pos = torch.from_numpy(np.mod(pos, length)).to(drawn["pos"])
    return dataclasses.replace(drawn, columns={**drawn.columns, "pos": new_pos})


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
    provenance: Mapping[str, str] | None = None,
) -> GalaxyCatalog:
    """Centrals and satellites for the haloes of ``halos`` heavier than ``min_mass`` (Msun/h).

    Occupations, positions and velocities come from the fitted HOD and profile (counter-based random numbers of
    ``seed``: a halo's galaxies do not depend on the rest of the catalog); properties from the samplers
    (``generator``). Columns: ``pos`` (N_g, 3) Mpc/h, ``vel`` (N_g, 3) km/s (when the haloes have velocities),
    ``is_central``, ``host`` (row in ``halos``), ``r_over_r200m`` (0 for centrals) and the model's targets.
    A catalog without the halo properties the samplers need is a ValidationError naming them (``where`` names
    the model in it). ``provenance``: where the model came from, added to the catalog's ``meta`` (the stage gives
    ``model_file``, the file actually used, its ``model_sha256`` and ``model_origin``: "file", "shipped" or "fitted in
    this run on N galaxies"); ``meta["model"]`` stays "population", the kind of model.
    """
    problems = _condition_problems(model, halos, where)
    if problems:
        raise ValidationError(problems)
    keep = torch.nonzero(halos["mass"] >= min_mass).reshape(-1)
    chosen = halos.select(keep)
    velocities = "vel" in chosen
    prepared = prepare_hod(_bare_halos(chosen, velocities=velocities), velocities=velocities)
    # the HOD places satellites on an NFW of concentration 1 inside r200m; its CDF turns each radius back into the
    # uniform it was drawn from, which the fitted distribution maps to the satellite's r / r200m
    prepared = dataclasses.replace(prepared, concentration=np.ones_like(prepared.concentration))
    drawn = populate(prepared, model.occupation, seed)
    drawn = _place_satellites(model, drawn, prepared)
    host = drawn["host"].long().cpu()
    central = drawn["is_central"].bool().cpu()
    x = property_matrix(chosen, model.condition_names, role="halo catalog").cpu()
    radii = torch.zeros(len(drawn), dtype=torch.float32)
    sat = torch.nonzero(~central).reshape(-1)
    cen = torch.nonzero(central).reshape(-1)
    if len(sat):
        radii[sat] = torch.from_numpy(satellite_radii(chosen, drawn, sat)).float()
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
    meta: dict[str, str | int | float | bool] = {
        "model": "population",
        **{str(k): str(v) for k, v in (provenance or {}).items()},
        "seed": int(seed),
        "min_mass": float(min_mass),
        "radial_bins": len(model.radial_quantiles),
    }
    meta |= {
        f"hod_{k}": float(v) for k, v in dataclasses.asdict(model.occupation).items() if k != "modulate_satellites"
    }
    return GalaxyCatalog(columns=columns, box=halos.box, meta=meta)


# ---- training sources and evaluation -----------------------------------------------------------------------


def concatenate_boxes(pairs: Sequence[tuple[HaloCatalog, GalaxyCatalog]]) -> tuple[HaloCatalog, GalaxyCatalog]:
    """Several boxes' (haloes, galaxies) as one pair: rows stacked, galaxy hosts shifted to the stacked rows.

    The boxes must have the same side and redshift (positions are only used relative to the host, so boxes may
    overlap); columns are those every box has.
    """
    if not pairs:
        raise ValidationError("no boxes to train on")
    box = pairs[0][0].box
    for halos, _ in pairs:
        if abs(halos.box.length - box.length) > 1e-6 * box.length or abs(halos.box.redshift - box.redshift) > 1e-6:
            raise ValidationError(
                f"boxes of different sides or redshifts cannot be stacked: {box.length:g} Mpc/h at z = "
                f"{box.redshift:g} and {halos.box.length:g} Mpc/h at z = {halos.box.redshift:g}"
            )
    halo_names = set.intersection(*(set(h.columns) for h, _ in pairs))
    galaxy_names = set.intersection(*(set(g.columns) for _, g in pairs))
    offsets = np.cumsum([0] + [len(h) for h, _ in pairs[:-1]])
    halo_columns = {n: torch.cat([h[n] for h, _ in pairs]) for n in pairs[0][0].columns if n in halo_names}
    galaxy_columns = {}
    for name in (n for n in pairs[0][1].columns if n in galaxy_names):
        parts = [g[name] + int(off) if name == "host" else g[name] for (_, g), off in zip(pairs, offsets, strict=True)]
        galaxy_columns[name] = torch.cat(parts)
    halos = HaloCatalog(columns=halo_columns, box=box, units=dict(pairs[0][0].units))
    return halos, GalaxyCatalog(columns=galaxy_columns, box=box)


def split_by_halo(
    halos: HaloCatalog, galaxies: GalaxyCatalog, fraction: float, seed: int
) -> tuple[tuple[HaloCatalog, GalaxyCatalog], tuple[HaloCatalog, GalaxyCatalog]]:
    """Training and validation (haloes, galaxies) of one catalog: ``fraction`` of the haloes (drawn with ``seed``)
    held out with all their galaxies; hosts renumbered within each part."""
    if not 0 <= fraction < 1:
        raise ValidationError(f"the validation fraction must lie in [0, 1), got {fraction}")
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(halos)))
    n_val = round(fraction * len(halos))
    parts = []
    for rows in (order[n_val:].sort().values, order[:n_val].sort().values):
        new_row = torch.full((len(halos),), -1, dtype=torch.long)
        new_row[rows] = torch.arange(len(rows))
        mapped = new_row[galaxies["host"].long().cpu()]
        keep = mapped >= 0
        chosen = galaxies.select(keep.to(galaxies["host"].device))
        chosen = chosen.with_columns(host=mapped[keep].to(chosen["host"].device))
        parts.append((halos.select(rows.to(halos["mass"].device)), chosen))
    return parts[0], parts[1]


def evaluate_population(
    model: PopulationModel, halos: HaloCatalog, galaxies: GalaxyCatalog, *, seed: int = 0
) -> dict[str, float]:
    """How a population drawn for ``halos`` compares with their true ``galaxies``.

    Returns: n_ratio (drawn / true galaxies), satellite_fraction and satellite_fraction_true, ks_<property>_centrals
    and ks_<property>_satellites (two-sample KS statistics of each drawn property against the truth), and
    ks_r_over_r200m (satellites' distances from their host).
    """
    from cosmoseg.measure.twosample import ks_2samp

    drawn = populate_galaxies(model, halos, seed=seed, generator=torch.Generator().manual_seed(seed))
    out: dict[str, float] = {"n_galaxies": float(len(drawn)), "n_galaxies_true": float(len(galaxies))}
    out["n_ratio"] = len(drawn) / max(len(galaxies), 1)
    for name, catalog in (("", drawn), ("_true", galaxies)):
        out[f"satellite_fraction{name}"] = float((~catalog["is_central"].bool()).float().mean())
    for role, flag in (("centrals", True), ("satellites", False)):
        ours = drawn.select(drawn["is_central"].bool() == flag)
        truth = galaxies.select(galaxies["is_central"].bool() == flag)
        for prop in model.target_names:
            if len(ours) and len(truth) and prop in truth:
                out[f"ks_{prop}_{role}"] = float(ks_2samp(ours[prop].double(), truth[prop].double()).statistic)
    true_sat = torch.nonzero(~galaxies["is_central"].bool()).reshape(-1)
    ours_sat = drawn[SATELLITE_RADIUS][~drawn["is_central"].bool()].double()
    if len(true_sat) and len(ours_sat):
        truth_r = torch.from_numpy(satellite_radii(halos, galaxies, true_sat))
        out["ks_r_over_r200m"] = float(ks_2samp(ours_sat, truth_r).statistic)
    return out
