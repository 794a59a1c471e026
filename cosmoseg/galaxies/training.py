"""Training and evaluating the joint samplers on a suite of boxes (``cosmoseg galaxies train | evaluate``).

The truth of every box is the galaxy model (:func:`cosmoseg.galaxies.model.paint_galaxies`, centrals only, seeded
per box) painted onto the box's FoF ``halos``; boxes are split into training and validation by whole boxes. The
evaluation draws galaxies for the validation haloes with each sampler and compares them with the truth:

* per property: the two-sample KS statistic and the Wasserstein-1 distance (:mod:`cosmoseg.measure.twosample`);
* jointly: the conditional C2ST AUC — a classifier sees (galaxy properties, halo properties) from the sampler
  and from the truth; 0.5 = indistinguishable (Lopez-Paz & Oquab 2017);
* calibration: the coverage of the central 68% and 95% intervals of ``n_draws`` draws per halo, per property
  (:mod:`cosmoseg.measure.calibration`, mid-rank PIT).

The floor of every metric is :class:`TruthRedraw`: the galaxy model painted again on the same held-out haloes with
other seeds, scored like a sampler (a perfect sampler of p(galaxy | halo) lands there, not at KS = 0 or AUC = 0.5
exactly). :func:`load_samplers` names the rows of several sampler files uniquely; :func:`training_box_notes` says
when a scored box is one that a sampler's model card lists as a training box.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog, Table, load_artifact, open_artifact
from cosmoseg.errors import CosmosegError, ValidationError
from cosmoseg.galaxies.features import central_pairs, property_matrix
from cosmoseg.galaxies.model import paint_galaxies
from cosmoseg.galaxies.samplers.base import JointSampler, load_sampler, sampler_class
from cosmoseg.measure.calibration import coverage, pit_values
from cosmoseg.measure.twosample import c2st, ks_2samp, wasserstein_1d
from cosmoseg.sim.suites import box_index, find_boxes, split_suite

__all__ = [
    "TRUTH_REDRAWN",
    "TruthRedraw",
    "box_pairs",
    "card_split",
    "catalog_pairs",
    "evaluate_samplers",
    "find_boxes",
    "is_suite",
    "load_samplers",
    "split_boxes",
    "split_card",
    "suite_fingerprint",
    "suite_rows",
    "train_rows",
    "train_sampler",
    "training_box_notes",
]

TRUTH_REDRAWN = "truth redrawn"
"""The row name of :class:`TruthRedraw` in evaluation tables."""


def split_boxes(
    paths: Sequence[Path], n_validation: int, seed: int, *, allow_all: bool = False
) -> tuple[list[Path], list[Path]]:
    """Whole boxes for training and validation: the ``n_validation`` validation boxes of
    :func:`cosmoseg.sim.suites.split_suite` (the one seeded split of a suite), the rest for training, each in the
    order of ``paths``.

    ``allow_all``: ``n_validation`` may be the number of boxes (every box scored, none to train on: evaluating a
    fitted model on a new suite); training needs at least one box, so it is refused otherwise.
    """
    try:
        split = split_suite(len(paths), n_validation, seed=seed, allow_all=allow_all)
    except ValidationError as error:
        raise ValidationError(error.problems, context="n_validation") from None
    return split.pick(paths, "train"), split.pick(paths, "validation")


def box_pairs(path: Path, variant: str, seed: int, *, satellites: bool = False) -> tuple[HaloCatalog, GalaxyCatalog]:
    """The FoF haloes of a box file and the galaxies the galaxy model paints on them (seed + box index): centrals
    only, or with ``satellites`` centrals and satellites."""
    objects = load_artifact(path)
    halos = objects.get("halos")
    if not isinstance(halos, HaloCatalog):
        raise ValidationError(f"{path}: a suite box needs 'halos' (HaloCatalog), it has {sorted(objects)}")
    return halos, paint_galaxies(halos, variant=variant, seed=seed + box_index(path), satellites=satellites)


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


def suite_fingerprint(path: Path) -> str | None:
    """The ``suite_fingerprint`` attribute `cosmoseg simulate` writes into a box file (None when absent)."""
    try:
        with open_artifact(path) as f:
            value = f.attrs.get("suite_fingerprint")
    except CosmosegError:
        return None
    return None if value is None else str(value)


def split_card(source: Path, train_paths: Sequence[Path], val_paths: Sequence[Path]) -> dict[str, Any]:
    """What a model card records of a suite split: the suite folder, its fingerprint, the training and the
    validation boxes (file names), so that `evaluate` can tell when it scores a training box."""
    paths = [*train_paths, *val_paths]
    return {
        "suite": str(source),
        "suite_fingerprint": (suite_fingerprint(paths[0]) if paths else None) or "",
        "train_boxes": [p.name for p in train_paths],
        "validation_boxes": [p.name for p in val_paths],
    }


_DATA_SPLIT = re.compile(r"^(?P<suite>.*?): train \[(?P<train>[^\]]*)\], validate \[(?P<val>[^\]]*)\]")


def card_split(card: Mapping[str, Any]) -> dict[str, Any] | None:
    """The suite split a model card records (:func:`split_card`), or for older cards what its ``data`` line says
    (``"<suite>: train [...], validate [...]; ..."``, no fingerprint); None for a card without a suite split."""
    if "train_boxes" in card:
        return {
            "suite": str(card.get("suite", "")),
            "suite_fingerprint": str(card.get("suite_fingerprint") or ""),
            "train_boxes": [str(n) for n in card["train_boxes"]],
            "validation_boxes": [str(n) for n in card.get("validation_boxes", [])],
        }
    match = _DATA_SPLIT.match(str(card.get("data", "")))
    if match is None:
        return None

    def names(text: str) -> list[str]:
        return [n.strip().strip("'\"") for n in text.split(",") if n.strip()]

    return {
        "suite": match["suite"],
        "suite_fingerprint": "",
        "train_boxes": names(match["train"]),
        "validation_boxes": names(match["val"]),
    }


def _same_suite(split: Mapping[str, Any], suite_dir: Path, box: Path) -> bool:
    """Whether the card's suite is the scored one: by fingerprint when the card has one, else by the folder (its
    path when it exists here, else its name)."""
    fingerprint = split["suite_fingerprint"]
    if fingerprint:
        return suite_fingerprint(box) == fingerprint
    recorded = Path(split["suite"])
    if not recorded.exists():
        return recorded.name == suite_dir.name
    return recorded.resolve() == suite_dir.resolve()


def training_box_notes(samplers: Mapping[str, Any], suite_dir: Path, scored: Sequence[Path]) -> list[str]:
    """One line per sampler whose model card lists a scored box as a training box (the same suite: by the suite
    fingerprint the card records, or for older cards by the suite folder, its name when the recorded path is not
    there). Its held-out metrics are then not held out."""
    notes = []
    for name, sampler in samplers.items():
        split = card_split(getattr(sampler, "card", None) or {})
        if split is None:
            continue
        trained = [p.name for p in scored if p.name in split["train_boxes"] and _same_suite(split, suite_dir, p)]
        if trained:
            notes.append(
                f"note: {', '.join(trained)} scored here {'is a' if len(trained) == 1 else 'are'} training "
                f"box{'' if len(trained) == 1 else 'es'} of {name} (its model card: train {split['train_boxes']}, "
                f"validate {split['validation_boxes']} of {split['suite']}); its scores there are not held out"
            )
    return notes


def load_samplers(paths: Sequence[Path]) -> dict[str, JointSampler]:
    """Fitted sampler files -> {row name: sampler}, one row per file given: ``"<method> (<file name>)"``, or with
    the path as given where file names repeat, then ``#2``, ``#3`` ... for a path given more than once."""
    loaded = [(Path(p), load_sampler(p)) for p in paths]
    short = [f"{s.method} ({p.name})" for p, s in loaded]
    names = [f"{s.method} ({p})" if short.count(short[i]) > 1 else short[i] for i, (p, s) in enumerate(loaded)]
    out: dict[str, JointSampler] = {}
    for name, (_, sampler) in zip(names, loaded, strict=True):
        unique, k = name, 1
        while unique in out:
            k += 1
            unique = f"{name} #{k}"
        out[unique] = sampler
    return out


class TruthRedraw:
    """The floor of the metrics: the galaxy model painted again onto the same haloes with other seeds.

    Behaves as a sampler of the centrals of ``paths`` (``sample(x, n, generator) -> (n, M, D)``): ``x`` must be the
    condition matrix of one of these boxes or of all of them stacked in order (as :func:`suite_rows` and the
    clustering make them); each draw paints every box with :func:`~cosmoseg.galaxies.model.paint_galaxies`
    (centrals, ``variant``) and a seed drawn from ``generator`` (never the truth's seed + box index, but with
    probability 2^-62). The truth itself is the draw with seed ``seed`` + box index: scoring this against it gives
    what a perfect sampler of p(galaxy | halo) would score.
    """

    method = TRUTH_REDRAWN

    def __init__(
        self,
        paths: Sequence[Path],
        conditions: Sequence[str],
        targets: Sequence[str],
        *,
        variant: str = "fiducial",
        seed: int = 0,
    ) -> None:
        self.condition_names, self.target_names = list(conditions), list(targets)
        self.variant = variant
        self.card: dict[str, Any] = {}
        self._boxes: list[tuple[HaloCatalog, torch.Tensor, torch.Tensor]] = []
        for path in paths:
            halos, galaxies = box_pairs(Path(path), variant, seed)
            halo_rows, _ = central_pairs(halos, galaxies)
            x = property_matrix(halos, self.condition_names, role=f"halo catalog of {Path(path).name}")[halo_rows]
            self._boxes.append((halos, halo_rows, x))
        if not self._boxes:
            raise ValidationError("TruthRedraw needs at least one box")

    def _which(self, x: torch.Tensor) -> list[int]:
        x = torch.as_tensor(x)
        every = torch.cat([b[2] for b in self._boxes])
        if x.shape == every.shape and torch.equal(x.to(every.dtype), every):
            return list(range(len(self._boxes)))
        for i, (_, _, box_x) in enumerate(self._boxes):
            if x.shape == box_x.shape and torch.equal(x.to(box_x.dtype), box_x):
                return [i]
        raise ValidationError(
            f"{TRUTH_REDRAWN!r} draws only for the haloes it was made on: x {tuple(x.shape)} is not one of its boxes "
            f"({[tuple(b[2].shape) for b in self._boxes]}) nor all of them stacked"
        )

    def sample(self, x: torch.Tensor, n: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, M, D)`` galaxy properties of the centrals of the haloes ``x`` (M, C), painted ``n`` times."""
        which = self._which(x)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        draws = []
        for _ in range(n):
            base = int(torch.randint(0, 2**62, (1,), generator=gen))
            parts = []
            for i in which:
                halos, halo_rows, _ = self._boxes[i]
                galaxies = paint_galaxies(halos, variant=self.variant, seed=base + i, satellites=False)
                rows, galaxy_rows = central_pairs(halos, galaxies)
                if not torch.equal(rows, halo_rows):
                    raise ValidationError("the galaxy model's centrals moved between draws")
                parts.append(property_matrix(galaxies, self.target_names, role="redrawn truth")[galaxy_rows])
            draws.append(torch.cat(parts))
        return torch.stack(draws)


def evaluate_samplers(
    samplers: Mapping[str, JointSampler | TruthRedraw],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    n_draws: int = 100,
    seed: int = 0,
    c2st_epochs: int = 20,
) -> Table:
    """One row per sampler: KS and W1 per property, conditional C2ST AUC, 68%/95% coverage per property.

    x: ``(N, C)`` halo properties and y: ``(N, D)`` true galaxy properties of the validation centrals, in the
    samplers' column order (every sampler must share ``target_names``). A :class:`TruthRedraw` of the same haloes
    among ``samplers`` gives the floor. The C2ST sees (drawn, x) against (y, x) with one halo-level split
    (``paired``): a halo's context is never learnt under one label and tested under the other.
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
        # one split for both samples: a halo's two rows (drawn, true) are both in training or both in the test
        test = c2st(
            one,
            y,
            context_a=x,
            context_b=x,
            paired=True,
            epochs=c2st_epochs,
            generator=torch.Generator().manual_seed(seed),
        )
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
