"""Clustering of galaxy sub-populations: samplers and an HOD against the truth on held-out boxes.

The joint samplers (:mod:`cosmoseg.galaxies.samplers`) predict the properties of the central galaxy of every halo;
the centrals sit at the halo positions (``halos["pos"]``), so a sub-population selected on the predicted properties
has a clustering that tells whether the sampler put the right galaxies in the right haloes. This module compares,
on the held-out boxes of a suite:

* **selections** (:class:`Selection`) on the galaxy-property matrix: stellar-mass thresholds log10 M* >= 10.0 and
  >= 10.5 [Msun/h] (about 3800 and 1400 centrals per 75 Mpc/h box of the 128^3 suite, n = 9e-3 and 3e-3 h^3/Mpc^3;
  log M* >= 11 leaves about 100, too few for a P(k)) and a red / blue split at g - i = 0.97 mag
  (:data:`COLOUR_CUT`): the valley of the truth's bimodal colour distribution lies at g - i = 0.96-1.00 in every
  bin of 0.25 dex in log M* from 9.5 to 10.75, and a cut at 0.97 agrees with the galaxy model's own quenched flag
  for 96% of the training centrals. Red and blue partition all centrals.
* the **power spectrum** of each sub-population (TSC, interlaced, shot noise subtracted:
  :func:`cosmoseg.measure.power.catalog_power_spectrum`) and its ratio to the truth's, per k bin of width k_f;
* the **large-scale bias** against the linear density field ``fields["delta"]`` of the box (the initial field
  scaled to z = 0): the least-squares ratio over the Fourier modes with |k| < k_max and its error
  (:func:`cosmoseg.measure.bias.bias_from_modes`). The galaxies are at their z = 0 (Eulerian) positions while
  delta_L is the initial field, so b includes the propagator damping of the few modes below k_max; it is the same
  for every method, and the differences b_method - b_truth are estimated the same way from the difference field
  (its error is then free of cosmic variance);
* an **HOD** as a fifth method: a Zheng et al. (2007) central occupation A <N_cen>(M; log M_min, sigma_logM)
  (satellites off: the samplers predict centrals only) fitted per sub-population to the truth's binned fraction of
  haloes hosting a selected central in the training boxes (:func:`cosmoseg.galaxies.hod_fit.fit_central_occupation`),
  then drawn as Bernoulli centrals in the held-out haloes. It predicts no galaxy properties (its KS / C2ST are n/a).

Per box, every sampler draws ``n_draws`` sets of properties per halo (generators seeded with ``seed`` + the box's
position + draw x :data:`DRAW_SEED_STRIDE`); results are averaged over the held-out boxes and the draws. The
P(k)-ratio errors are the box-to-box scatter of the mean (the draw-to-draw scatter with one box), the bias errors
the per-mode errors of one draw combined over boxes, and the ``_spread`` columns the scatter of the box-averaged
bias between draws. A :class:`~cosmoseg.galaxies.training.TruthRedraw` among the samplers (the galaxy model painted
again on the same haloes) gives the floor: the truth is one draw too, so even a perfect sampler has Δb ≠ 0 against
it. The figures of a comparison are in :mod:`cosmoseg.galaxies.figures`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from cosmoseg.data import Field, Table, load_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.features import central_pairs, property_matrix
from cosmoseg.galaxies.hod_fit import CentralOccupationFit, fit_central_occupation
from cosmoseg.galaxies.samplers.base import JointSampler
from cosmoseg.galaxies.training import TruthRedraw, box_pairs, split_boxes
from cosmoseg.measure.bias import bias_from_modes
from cosmoseg.measure.power import catalog_density_modes, catalog_power_spectrum
from cosmoseg.sim.suites import find_boxes

__all__ = [
    "COLOUR_CUT",
    "DRAW_SEED_STRIDE",
    "MSTAR_THRESHOLDS",
    "ClusteringBox",
    "ClusteringResult",
    "Selection",
    "clustering_comparison",
    "comparison_markdown",
    "default_selections",
    "draw_centrals",
    "has_linear_field",
    "load_clustering_box",
    "meta_names",
    "run_clustering",
]

COLOUR_CUT = 0.97
"""g - i [mag] between blue (below) and red (at or above) centrals: the valley of the truth's colour bimodality."""
MSTAR_THRESHOLDS = (10.0, 10.5)
"""log10 M* [Msun/h] thresholds of the stellar-mass-selected samples."""
HOD_METHOD = "hod"


@dataclasses.dataclass(frozen=True)
class Selection:
    """A sub-population: the galaxies with ``low <= column < high``.

    name: label in tables and figures. column: a galaxy property (e.g. ``log_mstar``, ``color_gi``).
    """

    name: str
    column: str
    low: float = -math.inf
    high: float = math.inf

    def mask(self, props: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        """``(N,)`` bool: rows of the ``(N, D)`` property matrix (columns ``names``) in the selection."""
        if self.column not in names:
            raise ValidationError(f"selection {self.name!r} needs property {self.column!r}; have {list(names)}")
        value = props[:, list(names).index(self.column)]
        return (value >= self.low) & (value < self.high)


def default_selections(
    colour_cut: float = COLOUR_CUT, thresholds: Sequence[float] = MSTAR_THRESHOLDS
) -> tuple[Selection, ...]:
    """M* thresholds (``log_mstar >= t``), then red (``color_gi >= colour_cut``) and blue (below)."""
    out = [Selection(f"M*>{t:g}", "log_mstar", low=float(t)) for t in thresholds]
    return (*out, Selection("red", "color_gi", low=colour_cut), Selection("blue", "color_gi", high=colour_cut))


# ---------------------------------------------------------------------------------------------------------
# boxes, draws, the comparison


@dataclasses.dataclass(frozen=True)
class ClusteringBox:
    """The haloes of one box with their true centrals, as the comparison needs them.

    name: file name. length: box side, Mpc/h. pos: (M, 3) halo positions, Mpc/h. mass: (M,) halo mass, Msun/h.
    x: (M, C) halo properties (the samplers' conditions). truth: (M, D) the true central's properties (targets).
    delta_lin: (n, n, n) the linear density contrast at z = 0, or None when the box has no ``fields``.
    """

    name: str
    length: float
    pos: torch.Tensor
    mass: torch.Tensor
    x: torch.Tensor
    truth: torch.Tensor
    delta_lin: torch.Tensor | None


def load_clustering_box(
    path: Path,
    conditions: Sequence[str],
    targets: Sequence[str],
    *,
    variant: str = "fiducial",
    seed: int = 0,
    linear: bool = True,
) -> ClusteringBox:
    """Haloes, true centrals (:func:`~cosmoseg.galaxies.training.box_pairs`) and, with ``linear``, the channel
    ``delta`` of the box's ``fields`` (a `ValidationError` when missing)."""
    halos, galaxies = box_pairs(path, variant, seed)
    halo_rows, galaxy_rows = central_pairs(halos, galaxies)
    delta = None
    if linear:
        field = load_artifact(path).get("fields")
        if not isinstance(field, Field) or "delta" not in field.channels:
            raise ValidationError(f"{path}: the clustering needs 'fields' with channel 'delta' (the linear field)")
        delta = field.channel("delta")
    return ClusteringBox(
        name=path.name,
        length=float(halos.box.length),
        pos=halos["pos"][halo_rows],
        mass=halos["mass"][halo_rows].double(),
        x=property_matrix(halos, conditions, role=f"halo catalog of {path.name}")[halo_rows],
        truth=property_matrix(galaxies, targets, role=f"galaxy catalog of {path.name}")[galaxy_rows],
        delta_lin=delta,
    )


def has_linear_field(path: Path) -> bool:
    """Whether a box file holds ``fields`` with a ``delta`` channel."""
    field = load_artifact(path).get("fields")
    return isinstance(field, Field) and "delta" in field.channels


DRAW_SEED_STRIDE = 104_729
"""Seed offset between draws: draw k of box i uses seed + i + k * DRAW_SEED_STRIDE (k = 0: seed + i, as before)."""


def _draw_seed(seed: int, box: int, draw: int) -> int:
    return seed + box + draw * DRAW_SEED_STRIDE


def draw_centrals(
    samplers: Mapping[str, JointSampler | TruthRedraw],
    boxes: Sequence[ClusteringBox],
    *,
    seed: int = 0,
    draw: int = 0,
) -> dict[str, list[torch.Tensor]]:
    """One draw of central properties per halo: name -> per box (M, D), generator seeded with seed + box position
    (+ ``draw`` x :data:`DRAW_SEED_STRIDE` for the draw-th of several)."""
    out: dict[str, list[torch.Tensor]] = {}
    for name, sampler in samplers.items():
        out[name] = [
            sampler.sample(box.x, 1, generator=torch.Generator().manual_seed(_draw_seed(seed, i, draw)))[0]
            for i, box in enumerate(boxes)
        ]
    return out


@dataclasses.dataclass(frozen=True)
class ClusteringResult:
    """The comparison: ``summary`` (one row per method and sub-population), ``curves`` (one row per method,
    sub-population and k bin), the HOD fits per sub-population, and the samplers' first draws (name -> per box
    (M, D))."""

    summary: Table
    curves: Table
    hod_fits: dict[str, CentralOccupationFit]
    draws: dict[str, list[torch.Tensor]]
    boxes: tuple[ClusteringBox, ...] = ()
    targets: tuple[str, ...] = ()


def _spread(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof 1); 0 for a single value."""
    arr = np.asarray(values, np.float64)
    return float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def clustering_comparison(
    samplers: Mapping[str, JointSampler | TruthRedraw],
    boxes: Sequence[ClusteringBox],
    *,
    targets: Sequence[str],
    training_boxes: Sequence[ClusteringBox] = (),
    selections: Sequence[Selection] | None = None,
    k_max: float = 0.2,
    k_max_power: float = 0.5,
    n_mesh: int = 64,
    seed: int = 0,
    draws: Mapping[str, Sequence[torch.Tensor]] | None = None,
    n_draws: int = 1,
) -> ClusteringResult:
    """P(k) ratio to the truth and large-scale bias of each sub-population, for every sampler and the HOD.

    samplers: name -> sampler predicting ``targets`` (the columns of every box's ``truth``); a
    :class:`~cosmoseg.galaxies.training.TruthRedraw` of the boxes gives the floor (the truth against its own
    redraws). boxes: held-out boxes with their linear field. training_boxes: where the HOD is fitted (none: no HOD
    rows). k_max [h/Mpc]: modes of the bias. k_max_power [h/Mpc]: the P(k) curves and their mean |ratio - 1| stop
    there. n_mesh: mesh of the P(k). n_draws: independent draws per halo (and HOD draws) that every number is
    averaged over: one draw of a sampler moves Δb of the colour samples by about ±0.04, so one draw says little.
    draws: a precomputed first draw (:func:`draw_centrals`; else drawn here with ``seed``).

    Summary columns (R rows, R = methods x sub-populations): method, population (indices into meta
    ``method_i`` / ``population_j``); n_truth, n_method [h^3/Mpc^3] (n_method: mean over draws); bias_truth,
    bias_method, bias_diff = b_method - b_truth: means over draws of the box means, each with ``_err`` (the
    per-mode error of one draw, combined over boxes: for the truth, and for the difference field, free of cosmic
    variance) and, for bias_method and bias_diff, ``_spread`` (the standard deviation over the n_draws draws,
    0 for one draw); power_ratio_mad = mean over k bins < k_max_power of |<P_method / P_truth> - 1|, <> over boxes
    and draws. Curves columns: method, population, k [h/Mpc], power_truth, power_method [(Mpc/h)^3, means over
    boxes (and draws)], ratio (mean over boxes and draws of P_method / P_truth) and ratio_err (the box-to-box
    scatter of the per-box ratios / sqrt(boxes); with one box, the draw-to-draw scatter / sqrt(n_draws)).
    """
    if not boxes:
        raise ValidationError("no held-out box to measure the clustering in")
    if any(b.delta_lin is None for b in boxes):
        raise ValidationError("every held-out box needs its linear field for the bias")
    if n_draws < 1:
        raise ValidationError(f"n_draws must be >= 1, got {n_draws}")
    targets = list(targets)
    for name, sampler in samplers.items():
        if list(sampler.target_names) != targets:
            raise ValidationError(f"sampler {name!r} predicts {sampler.target_names}, not {targets}")
    selections = tuple(selections or default_selections())
    first = dict(draws) if draws is not None else draw_centrals(samplers, boxes, seed=seed)
    every_draw = [first] + [draw_centrals(samplers, boxes, seed=seed, draw=k) for k in range(1, n_draws)]
    hod_fits: dict[str, CentralOccupationFit] = {}
    if training_boxes:
        log_mass = torch.cat([torch.log10(b.mass) for b in training_boxes]).numpy()
        for sel in selections:
            chosen = torch.cat([sel.mask(b.truth, targets) for b in training_boxes]).numpy()
            hod_fits[sel.name] = fit_central_occupation(log_mass, chosen)
    methods = [*samplers, *([HOD_METHOD] if hod_fits else [])]

    # per box: selected halo rows of every (method, selection, draw)
    def rows_of(method: str, i: int, j: int, k: int) -> torch.Tensor:
        box, sel = boxes[i], selections[j]
        if method == HOD_METHOD:
            gen = torch.Generator().manual_seed(seed + 7919 * (j + 1) + i + k * DRAW_SEED_STRIDE)
            return hod_fits[sel.name].draw(box.mass, gen)
        return sel.mask(every_draw[k][method][i], targets)

    n_boxes = len(boxes)
    summary: dict[str, list[float]] = {}
    curves: dict[str, list[float]] = {}
    for j, sel in enumerate(selections):
        truth_spec, truth_bias, truth_modes, truth_n = [], [], [], []
        for box in boxes:
            pos = box.pos[sel.mask(box.truth, targets)]
            truth_spec.append(catalog_power_spectrum(pos, box.length, n_mesh=n_mesh, k_max=k_max_power))
            modes = catalog_density_modes(pos, box.length, n_mesh=box.delta_lin.shape[0])  # type: ignore[union-attr]
            lin = torch.fft.rfftn(box.delta_lin.double())  # type: ignore[union-attr]
            truth_modes.append((modes.delta_k, lin))
            truth_bias.append(bias_from_modes(modes.delta_k, lin, box.length, k_max))
            truth_n.append(len(pos) / box.length**3)
        k = truth_spec[0].k.numpy()
        for m, method in enumerate(methods):
            # [draw][box]
            ratios = np.zeros((n_draws, n_boxes, k.size))
            powers = np.zeros((n_draws, n_boxes, k.size))
            bias, bias_err = np.zeros((n_draws, n_boxes)), np.zeros((n_draws, n_boxes))
            diff, diff_err = np.zeros((n_draws, n_boxes)), np.zeros((n_draws, n_boxes))
            dens = np.zeros((n_draws, n_boxes))
            for d in range(n_draws):
                for i, box in enumerate(boxes):
                    pos = box.pos[rows_of(method, i, j, d)]
                    spec = catalog_power_spectrum(pos, box.length, n_mesh=n_mesh, k_max=k_max_power)
                    powers[d, i] = spec.power.numpy()
                    ratios[d, i] = (spec.power / truth_spec[i].power).numpy()
                    g_truth, lin = truth_modes[i]
                    g = catalog_density_modes(pos, box.length, n_mesh=lin.shape[0]).delta_k
                    est, dif = (
                        bias_from_modes(g, lin, box.length, k_max),
                        bias_from_modes(g - g_truth, lin, box.length, k_max),
                    )
                    bias[d, i], bias_err[d, i] = est.bias, est.error
                    diff[d, i], diff_err[d, i] = dif.bias, dif.error
                    dens[d, i] = len(pos) / box.length**3
            ratio = ratios.mean(axis=(0, 1))
            if n_boxes > 1:
                ratio_err = ratios.mean(axis=0).std(axis=0, ddof=1) / math.sqrt(n_boxes)
            elif n_draws > 1:
                ratio_err = ratios[:, 0].std(axis=0, ddof=1) / math.sqrt(n_draws)
            else:
                ratio_err = 0 * ratio
            per_draw_bias, per_draw_diff = bias.mean(axis=1), diff.mean(axis=1)  # box means, one per draw
            row = {
                "method": m,
                "population": j,
                "n_truth": float(np.mean(truth_n)),
                "n_method": float(dens.mean()),
                "bias_truth": float(np.mean([b.bias for b in truth_bias])),
                "bias_truth_err": math.sqrt(sum(b.error**2 for b in truth_bias)) / n_boxes,
                "bias_method": float(per_draw_bias.mean()),
                "bias_method_err": float(np.sqrt((bias_err**2).sum(axis=1)).mean()) / n_boxes,
                "bias_method_spread": _spread(per_draw_bias),
                "bias_diff": float(per_draw_diff.mean()),
                "bias_diff_err": float(np.sqrt((diff_err**2).sum(axis=1)).mean()) / n_boxes,
                "bias_diff_spread": _spread(per_draw_diff),
                "power_ratio_mad": float(np.mean(np.abs(ratio - 1.0))),
            }
            for key, value in row.items():
                summary.setdefault(key, []).append(value)
            truth_power = np.mean([s.power.numpy() for s in truth_spec], axis=0)
            power_method = powers.mean(axis=(0, 1))
            for b in range(k.size):
                point = {
                    "method": m,
                    "population": j,
                    "k": k[b],
                    "power_truth": truth_power[b],
                    "power_method": power_method[b],
                    "ratio": ratio[b],
                    "ratio_err": ratio_err[b],
                }
                for key, value in point.items():
                    curves.setdefault(key, []).append(float(value))
    meta: dict[str, str | int | float | bool] = {f"method_{i}": name for i, name in enumerate(methods)}
    meta |= {f"population_{j}": s.name for j, s in enumerate(selections)}
    meta |= {f"selection_{j}": f"{s.low:g} <= {s.column} < {s.high:g}" for j, s in enumerate(selections)}
    meta |= {"k_max": k_max, "k_max_power": k_max_power, "n_mesh": n_mesh, "n_boxes": n_boxes, "seed": seed}
    meta |= {"n_draws": n_draws, "boxes": ",".join(b.name for b in boxes)}
    for name, fit in hod_fits.items():
        meta |= {f"hod[{name}].{key}": value for key, value in dataclasses.asdict(fit).items()}
    ints = {"method", "population"}

    def table(cols: dict[str, list[float]], units: dict[str, str]) -> Table:
        columns = {key: torch.tensor(v, dtype=torch.int64 if key in ints else torch.float64) for key, v in cols.items()}
        return Table(columns=columns, units=units, meta=meta)

    density = "h^3/Mpc^3"
    units = {"n_truth": density, "n_method": density}
    curve_units = {"power_truth": "(Mpc/h)^3", "power_method": "(Mpc/h)^3"}
    return ClusteringResult(
        summary=table(summary, units),
        curves=table(curves, curve_units),
        hod_fits=hod_fits,
        draws=first,
        boxes=tuple(boxes),
        targets=tuple(targets),
    )


def run_clustering(
    suite_dir: Path,
    samplers: Mapping[str, JointSampler | TruthRedraw],
    *,
    n_validation: int = 2,
    variant: str = "fiducial",
    seed: int = 0,
    hod: bool = True,
    n_draws: int = 1,
    **options: float | int,
) -> ClusteringResult:
    """:func:`clustering_comparison` on a suite folder: the held-out boxes of ``split_boxes(find_boxes(suite_dir),
    n_validation, seed, allow_all=True)`` (as in training; every box when ``n_validation`` is their number), the
    HOD fitted on the others (``hod``; no HOD when no box is left to fit it on). ``n_draws``: draws per halo.
    ``options``: k_max, k_max_power, n_mesh of :func:`clustering_comparison`."""
    if not samplers:
        raise ValidationError("no sampler to compare")
    first = next(iter(samplers.values()))
    conditions, targets = first.condition_names, first.target_names
    train_paths, val_paths = split_boxes(find_boxes(suite_dir), n_validation, seed, allow_all=True)
    if not val_paths:
        raise ValidationError("the clustering needs at least one held-out box")
    boxes = [load_clustering_box(p, conditions, targets, variant=variant, seed=seed) for p in val_paths]
    training = (
        [load_clustering_box(p, conditions, targets, variant=variant, seed=seed, linear=False) for p in train_paths]
        if hod
        else []
    )
    return clustering_comparison(
        samplers,
        boxes,
        targets=targets,
        training_boxes=training,
        seed=seed,
        n_draws=n_draws,
        **options,  # type: ignore[arg-type]
    )


def meta_names(table: Table, prefix: str) -> list[str]:
    """The names a comparison table lists in its meta, in order: ``meta_names(summary, "method")`` reads
    ``method_0``, ``method_1``, ..."""
    return [str(table.meta[f"{prefix}_{i}"]) for i in range(sum(k.startswith(f"{prefix}_") for k in table.meta))]


def comparison_markdown(summary: Table, scores: Table | None = None, score_targets: Sequence[str] = ()) -> str:
    """A first line saying what the ± of Δb is, then two markdown tables: one row per method (C2ST AUC ± its error
    and mean KS from ``scores`` — n/a for the HOD — then per sub-population b_method - b_truth and mean
    |P/P_truth - 1|), and the full per-population table.

    With several draws per halo (meta ``n_draws`` > 1) Δb and b_method are shown as mean ± standard deviation over
    the draws; with one, ± the per-mode error."""
    methods, pops = meta_names(summary, "method"), meta_names(summary, "population")
    score_names = meta_names(scores, "method") if scores is not None else []
    n_draws = int(summary.meta.get("n_draws", 1))
    spread = n_draws > 1 and "bias_diff_spread" in summary

    def cell(m: int, j: int, key: str) -> float:
        pick = (summary["method"] == m) & (summary["population"] == j)
        return float(summary[key][pick][0])

    def pm(m: int, j: int, key: str, sign: str = "") -> str:
        width = cell(m, j, f"{key}_spread" if spread else f"{key}_err")
        return f"{cell(m, j, key):{sign}.3f} ± {width:.3f}"

    lines = [
        f"Δb and b_method: mean ± standard deviation over {n_draws} draws per halo"
        if spread
        else "Δb and b_method: one draw per halo, ± the per-mode error",
        "",
    ]
    head = "| method | C2ST AUC | mean KS | " + " | ".join(f"Δb {p} | ΔP/P {p}" for p in pops) + " |"
    lines += [head, "|" + "---|" * (3 + 2 * len(pops))]
    for m, name in enumerate(methods):
        auc = ks = "n/a"
        if scores is not None and name in score_names:
            i = score_names.index(name)
            auc = f"{float(scores['c2st_auc'][i]):.3f} ± {float(scores['c2st_auc_err'][i]):.3f}"
            if score_targets:
                ks = f"{sum(float(scores[f'ks_{t}'][i]) for t in score_targets) / len(score_targets):.3f}"
        parts = [f"{pm(m, j, 'bias_diff', '+')} | {cell(m, j, 'power_ratio_mad'):.3f}" for j in range(len(pops))]
        lines.append(f"| {name} | {auc} | {ks} | " + " | ".join(parts) + " |")
    lines += ["", "| population | method | n_truth | n_method | b_truth | b_method | Δb | mean abs(P/P_t - 1) |"]
    lines.append("|" + "---|" * 8)
    for j, pop in enumerate(pops):
        for m, name in enumerate(methods):
            lines.append(
                f"| {pop} | {name} | {cell(m, j, 'n_truth'):.2e} | {cell(m, j, 'n_method'):.2e} | "
                f"{cell(m, j, 'bias_truth'):.3f} ± {cell(m, j, 'bias_truth_err'):.3f} | "
                f"{pm(m, j, 'bias_method')} | {pm(m, j, 'bias_diff', '+')} | {cell(m, j, 'power_ratio_mad'):.3f} |"
            )
    return "\n".join(lines)
