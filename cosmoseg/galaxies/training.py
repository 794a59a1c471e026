"""Training and evaluating the joint samplers on a suite of boxes (``cosmoseg galaxies train | evaluate``).

The truth of every box is the galaxy model (:func:`cosmoseg.galaxies.model.paint_galaxies`, centrals only, seeded
per box) painted onto the box's FoF ``halos``; boxes are split into training and validation by whole boxes. The
evaluation draws galaxies for the validation haloes with each sampler and compares them with the truth:

* per property: the two-sample KS statistic and the Wasserstein-1 distance (:mod:`cosmoseg.measure.twosample`);
* jointly: the conditional C2ST AUC — a classifier sees (galaxy properties, halo properties) from the sampler
  and from the truth; 0.5 = indistinguishable (Lopez-Paz & Oquab 2017);
* calibration: the coverage of the central 68% and 95% intervals of ``n_draws`` draws per halo, per property
  (:mod:`cosmoseg.measure.calibration`, mid-rank PIT).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog, Table, load_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.features import central_pairs, property_matrix
from cosmoseg.galaxies.model import paint_galaxies
from cosmoseg.galaxies.samplers.base import JointSampler, sampler_class
from cosmoseg.measure.calibration import coverage, pit_values
from cosmoseg.measure.twosample import c2st, ks_2samp, wasserstein_1d
from cosmoseg.sim.suites import find_boxes

__all__ = [
    "box_pairs",
    "catalog_pairs",
    "evaluate_samplers",
    "find_boxes",
    "is_suite",
    "split_boxes",
    "suite_rows",
    "train_rows",
    "train_sampler",
]


def split_boxes(paths: Sequence[Path], n_validation: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Whole boxes for training and validation: ``n_validation`` boxes drawn with ``seed``."""
    if not 0 <= n_validation < len(paths):
        raise ValidationError(
            f"n_validation must be in [0, {len(paths) - 1}] for {len(paths)} boxes, got {n_validation}"
        )
    order = np.random.default_rng(seed).permutation(len(paths))
    val = sorted(int(i) for i in order[:n_validation])
    return [p for i, p in enumerate(paths) if i not in val], [paths[i] for i in val]


def box_pairs(path: Path, variant: str, seed: int, *, satellites: bool = False) -> tuple[HaloCatalog, GalaxyCatalog]:
    """The FoF haloes of a box file and the galaxies the galaxy model paints on them (seed + box index): centrals
    only, or with ``satellites`` centrals and satellites."""
    objects = load_artifact(path)
    halos = objects.get("halos")
    if not isinstance(halos, HaloCatalog):
        raise ValidationError(f"{path}: a suite box needs 'halos' (HaloCatalog), it has {sorted(objects)}")
    index = int(path.stem.split("_")[-1]) if path.stem.split("_")[-1].isdigit() else 0
    return halos, paint_galaxies(halos, variant=variant, seed=seed + index, satellites=satellites)


def is_suite(source: Path) -> bool:
    """Whether ``source`` is a suite folder of `cosmoseg simulate` (box_*.h5), rather than a group catalog."""
    return source.is_dir() and any(source.glob("box_*.h5"))


def catalog_pairs(source: Path, *, min_log_mstar: float) -> tuple[HaloCatalog, GalaxyCatalog]:
    """The FoF groups and the galaxies (subhaloes with stars, ``log_mstar`` >= ``min_log_mstar``) of a hydro run's
    group catalog (TNG / AREPO / Gadget-4 layout), hosts pointing at the groups' rows."""
    from cosmoseg.io import read_group_catalog, read_tng_galaxies

    halos = read_group_catalog(source, kind="groups", dtype=torch.float64)
    galaxies = read_tng_galaxies(source, min_log_mstar=min_log_mstar, dtype=torch.float64)
    return halos, galaxies


def suite_rows(
    paths: Sequence[Path],
    conditions: Sequence[str],
    targets: Sequence[str],
    variant: str,
    seed: int,
    *,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditions ``(N, C)`` and targets ``(N, D)`` of every box's centrals, stacked.

    Conditions are halo and targets central-galaxy properties; with ``reverse`` (p(halo | galaxy)) conditions are
    galaxy and targets halo properties.
    """
    halo_names, galaxy_names = (targets, conditions) if reverse else (conditions, targets)
    xs, ys = [], []
    for path in paths:
        halos, galaxies = box_pairs(path, variant, seed)
        halo_rows, galaxy_rows = central_pairs(halos, galaxies)
        of_halos = property_matrix(halos, halo_names, role=f"halo catalog of {path.name}")[halo_rows]
        of_galaxies = property_matrix(galaxies, galaxy_names, role=f"galaxy catalog of {path.name}")[galaxy_rows]
        xs.append(of_galaxies if reverse else of_halos)
        ys.append(of_halos if reverse else of_galaxies)
    return torch.cat(xs), torch.cat(ys)


def train_sampler(
    method: str,
    train_paths: Sequence[Path],
    conditions: Sequence[str],
    targets: Sequence[str],
    *,
    hyper: Mapping[str, object] | None = None,
    variant: str = "fiducial",
    seed: int = 0,
    reverse: bool = False,
) -> JointSampler:
    """Fit a ``method`` sampler on the centrals of ``train_paths`` (galaxy model ``variant``); ``reverse``: p(halo |
    galaxy), ``conditions`` galaxy and ``targets`` halo properties."""
    x, y = suite_rows(train_paths, conditions, targets, variant, seed, reverse=reverse)
    return train_rows(method, x, y, conditions, targets, hyper=hyper, seed=seed)


def train_rows(
    method: str,
    x: torch.Tensor,
    y: torch.Tensor,
    conditions: Sequence[str],
    targets: Sequence[str],
    *,
    hyper: Mapping[str, object] | None = None,
    seed: int = 0,
) -> JointSampler:
    """Fit a ``method`` sampler of p(targets | conditions) on paired rows ``x (N, C)``, ``y (N, D)`` (one torch
    thread; seeded)."""
    sampler = sampler_class(method)(list(conditions), list(targets), **dict(hyper or {}))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread avoids oversubscription on shared cores
    try:
        sampler.fit(x, y, generator=torch.Generator().manual_seed(seed))
    finally:
        torch.set_num_threads(threads)
    return sampler


def evaluate_samplers(
    samplers: Mapping[str, JointSampler],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    n_draws: int = 100,
    seed: int = 0,
    c2st_epochs: int = 20,
) -> Table:
    """One row per sampler: KS and W1 per property, conditional C2ST AUC, 68%/95% coverage per property.

    x: ``(N, C)`` halo properties and y: ``(N, D)`` true galaxy properties of the validation centrals, in the
    samplers' column order (every sampler must share ``target_names``).
    """
    if not samplers:
        raise ValidationError("no sampler to evaluate")
    names = list(samplers)
    targets = samplers[names[0]].target_names
    rows: dict[str, list[float]] = {}
    for name in names:
        sampler = samplers[name]
        if sampler.target_names != targets:
            raise ValidationError(f"sampler {name!r} predicts {sampler.target_names}, not {targets}")
        gen = torch.Generator().manual_seed(seed)
        draws = sampler.sample(x, n_draws, generator=gen)  # (S, N, D)
        one = draws[0]
        row: dict[str, float] = {}
        for j, prop in enumerate(targets):
            row[f"ks_{prop}"] = float(ks_2samp(one[:, j], y[:, j]).statistic)
            row[f"w1_{prop}"] = float(wasserstein_1d(one[:, j], y[:, j]))
        test = c2st(one, y, context_a=x, context_b=x, epochs=c2st_epochs, generator=torch.Generator().manual_seed(seed))
        row["c2st_auc"], row["c2st_auc_err"] = float(test.auc), float(test.auc_err)
        pit = pit_values(y, samples=draws.movedim(0, 1))
        cov = coverage(pit, levels=(0.68, 0.95)).coverage  # (2, D)
        for j, prop in enumerate(targets):
            row[f"cov68_{prop}"], row[f"cov95_{prop}"] = float(cov[0, j]), float(cov[1, j])
        for key, value in row.items():
            rows.setdefault(key, []).append(value)
    columns = {"method": torch.arange(len(names))} | {k: torch.tensor(v, dtype=torch.float64) for k, v in rows.items()}
    meta = {f"method_{i}": name for i, name in enumerate(names)} | {"n_rows": len(x), "n_draws": n_draws}
    return Table(columns=columns, meta=meta)
