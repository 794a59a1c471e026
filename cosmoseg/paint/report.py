"""The held-out comparison of ``cosmoseg paint evaluate``: the successor, dm2gal and the two baselines against the
truth on a test box — P(k), B(k1, k2, θ), the PDF of log M*, the total stellar mass, occupancy precision / recall,
and slices side by side.

Methods (all painted onto the test box's grid; M* per voxel in Msun/h):

* ``successor``: :class:`~cosmoseg.paint.network.Dm2GalFCN`, galaxies where its occupancy logit is > 0;
* ``dm2gal``: the per-voxel network at the truth's occupied voxels (the paper's oracle positions), when given;
* ``hod_paper``: the paper's benchmark — the truth galaxies with stellar masses redrawn per host-mass bin and
  central/satellite from the training boxes (:func:`~cosmoseg.paint.baselines.paper_hod_baseline`);
* ``zheng07``: a Zheng et al. (2007) HOD catalog from a registered stage (default ``galaxies.hod``, calibrated on
  the truth galaxies of the first training box) with stellar masses drawn the same way;
* ``truth_redraw``: the truth's galaxy stage run again on the same haloes with another seed
  (:func:`~cosmoseg.paint.suite.redraw_truth`), when given: the ideal painter, whose scores are the floor set by
  the truth's own randomness (a painter of one realisation cannot be expected to match another realisation more
  closely than a second draw of the same model does).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog, Table
from cosmoseg.data.table import MISSING_FILL, resolved_column
from cosmoseg.errors import ValidationError
from cosmoseg.paint.baselines import hod_catalog_baseline, paper_hod_baseline
from cosmoseg.paint.data import PaintBox, TruthMaker
from cosmoseg.paint.evaluation import (
    PaintScores,
    bispectrum_deviations,
    bispectrum_table,
    pdf_distance,
    pdf_table,
    power_table,
    score_painting,
)
from cosmoseg.paint.fields import from_log_mass, stellar_mass_field
from cosmoseg.paint.models import PaintModel, check_voxel, domain_notes
from cosmoseg.paint.network import Dm2Gal, Dm2GalFCN
from cosmoseg.paint.suite import Split, registered_stage, run_stage
from cosmoseg.paint.training import paint_with_fcn, paint_with_oracle

__all__ = [
    "PaintReport",
    "evaluate_box",
    "evaluate_suite",
    "mean_markdown",
    "mean_rows",
    "mean_table",
    "report_tables",
    "rows_table",
    "score_rows",
    "summary_markdown",
]


@dataclasses.dataclass
class PaintReport:
    """fields: method -> (n, n, n) M* (Msun/h), "truth" first; scores: method -> PaintScores; tables: the Tables
    written to evaluation.h5 (summary, power, bispectrum, pdf); box: the test box's name; length: Mpc/h; extra:
    other measured numbers (e.g. the successor-vs-dm2gal RMS at the occupied voxels). Its figures are
    :func:`cosmoseg.paint.figures.write_paint_figures`."""

    box: str
    length: float
    fields: dict[str, torch.Tensor]
    scores: dict[str, PaintScores]
    tables: dict[str, Table]
    extra: dict[str, float]


def _zheng07(
    stage_name: str, params: Mapping[str, Any], halos: HaloCatalog, seed: int, calibration: PaintBox
) -> GalaxyCatalog:
    """The HOD stage's galaxies in ``halos``; calibrated on the truth of ``calibration`` when the stage takes
    ``calibration_halos`` / ``calibration_galaxies`` (``galaxies.hod`` does: its five occupation parameters are
    then fitted to that box's galaxies)."""
    cls, parsed = registered_stage(stage_name, params, "paint baseline")
    inputs: dict[str, Any] = {"halos": halos}
    if {"calibration_halos", "calibration_galaxies"} <= set(cls.inputs):
        inputs |= {"calibration_halos": calibration.halos, "calibration_galaxies": calibration.galaxies}
    return run_stage(cls, parsed, seed, "zheng07", **inputs)["galaxies"]


def evaluate_box(
    box: PaintBox,
    train: list[PaintBox],
    *,
    successor: Dm2GalFCN | None,
    per_voxel: Dm2Gal | None,
    threshold: float,
    hod_stage: str = "galaxies.hod",
    hod_params: Mapping[str, Any] | None = None,
    seed: int = 0,
    redraw: GalaxyCatalog | None = None,
) -> PaintReport:
    """Paint ``box`` with every method and measure them against its truth (see the module docstring); ``redraw``:
    another realisation of the truth's galaxies in ``box.halos`` (the ``truth_redraw`` row)."""
    truth = from_log_mass(box.target)
    fields: dict[str, torch.Tensor] = {"truth": truth}
    places: dict[str, bool] = {}
    extra: dict[str, float] = {}
    successor_out = None
    if successor is not None:
        # a realisation (masses drawn from the predicted scatter), as the truth is; and the conditional means
        draw = torch.Generator().manual_seed(seed)
        fields["successor"], successor_out = paint_with_fcn(successor, box, generator=draw)
        fields["successor_mean"] = from_log_mass(successor.paint(successor_out))
        places["successor"] = places["successor_mean"] = True
    if per_voxel is not None:
        fields["dm2gal"] = paint_with_oracle(per_voxel, box, threshold)
        places["dm2gal"] = False
        if successor_out is not None:  # where both apply: the truth's occupied voxels
            occupied = truth >= threshold
            fcn_log = successor.mean_log_mstar(successor_out)[occupied].float()
            voxel_log = torch.log10(1 + fields["dm2gal"][occupied])
            true_log = box.target[occupied]
            extra["rms_log_mstar_successor"] = float(((fcn_log - true_log) ** 2).mean().sqrt())
            extra["rms_log_mstar_dm2gal"] = float(((voxel_log - true_log) ** 2).mean().sqrt())
    generator = torch.Generator().manual_seed(seed)
    train_galaxies = [b.galaxies for b in train]
    train_halos = [b.halos for b in train]
    paper = paper_hod_baseline(train_galaxies, train_halos, box.galaxies, box.halos, generator=generator)
    fields["hod_paper"] = stellar_mass_field(paper, box.n)
    places["hod_paper"] = False
    if hod_stage:
        hod = _zheng07(hod_stage, hod_params or {}, box.halos, seed, train[0])
        with_mass = hod_catalog_baseline(train_galaxies, train_halos, hod, box.halos, generator=generator)
        fields["zheng07"] = stellar_mass_field(with_mass, box.n)
        places["zheng07"] = True
    if redraw is not None:
        fields["truth_redraw"] = stellar_mass_field(redraw, box.n)
        places["truth_redraw"] = True
    methods = {k: v for k, v in fields.items() if k != "truth"}
    scores = {
        name: score_painting(field, truth, box.length, threshold=threshold, places_galaxies=places[name])
        for name, field in methods.items()
    }
    tables = {
        "power": power_table(truth, methods, box.length),
        "bispectrum": bispectrum_table(truth, methods, box.length),
        "pdf": pdf_table(truth, methods, box.length),
    }
    summary_meta = {"box": box.name} | extra
    tables = {"summary": rows_table(_rows(scores, tables), summary_meta), **tables}
    return PaintReport(box.name, box.length, fields, scores, tables, extra)


def evaluate_suite(
    split: Split,
    *,
    successor: tuple[PaintModel, Mapping[str, Any]],
    per_voxel: tuple[PaintModel, Mapping[str, Any]] | None,
    hod_stage: str,
    hod_params: Mapping[str, Any] | None = None,
    seed: int = 0,
    redraw: TruthMaker | None = None,
) -> list[PaintReport]:
    """Evaluate every test box of ``split`` (one report each, in the split's order) with the successor and
    optionally dm2gal, each a (network, metadata) pair of :func:`~cosmoseg.paint.models.load_paint_model`, after
    checking their kinds, voxel size and particle resolution (:func:`~cosmoseg.paint.models.domain_notes`: every
    test box is checked before any is painted); ``redraw`` (:func:`~cosmoseg.paint.suite.redraw_truth`) adds the
    ``truth_redraw`` row."""
    if not split.test:
        raise ValidationError("the split has no test box (--n-test must be >= 1)", context="paint evaluate")
    fcn, meta = successor
    if not isinstance(fcn, Dm2GalFCN):
        raise ValidationError(f"--model must be a successor (fcn) model file, not {meta.get('kind')!r}",
                              context="paint evaluate")  # fmt: skip
    net, voxel_meta = per_voxel if per_voxel is not None else (None, None)
    if net is not None and not isinstance(net, Dm2Gal):
        raise ValidationError(f"--per-voxel must be a dm2gal model file, not {voxel_meta.get('kind')!r}",
                              context="paint evaluate")  # fmt: skip
    for box in split.test:
        for model_meta in (meta, voxel_meta):
            if model_meta is not None:
                where = f"paint evaluate ({box.name})"
                check_voxel(box.voxel, model_meta, where)
                domain_notes(model_meta, particle_mass=box.particle_mass, cosmology=box.cosmology, where=where)
    reports = []
    for box in split.test:
        reports.append(
            evaluate_box(
                box,
                split.train,
                successor=fcn,
                per_voxel=net,
                threshold=float(meta["threshold"]),
                hod_stage=hod_stage,
                hod_params=hod_params,
                seed=seed,
                redraw=None if redraw is None else redraw(box.halos, box.index),
            )
        )
    return reports


SCORE_COLUMNS = ("power_score", "max_power_deviation", "small_scale_score")
OCCUPANCY_COLUMNS = ("total_mass_ratio", "precision", "recall")


def _triangles(report: PaintReport) -> list[tuple[float, float]]:
    bis = report.tables["bispectrum"]
    return list(dict.fromkeys(zip(bis["k1"].tolist(), bis["k2"].tolist(), strict=True)))


def _rows(scores: Mapping[str, PaintScores], tables: Mapping[str, Table]) -> dict[str, dict[str, float]]:
    rows = {}
    for name, s in scores.items():
        row = {key: float(getattr(s, key)) for key in SCORE_COLUMNS}
        deviations = bispectrum_deviations(tables["bispectrum"], name)
        row |= {f"bispectrum_{i}": d for i, d in enumerate(deviations)}
        row["pdf_ks"] = pdf_distance(tables["pdf"], name)
        row |= {key: float(getattr(s, key)) for key in OCCUPANCY_COLUMNS}
        rows[name] = row
    return rows


def score_rows(report: PaintReport) -> dict[str, dict[str, float]]:
    """Per method, the summary numbers of one box: the P(k) scores, ``bispectrum_<i>`` (mean |B/B_truth − 1| of
    triangle i), ``pdf_ks``, the total-mass ratio and the occupancy precision / recall (NaN where not applicable)."""
    return _rows(report.scores, report.tables)


MISSING_NOTE = (
    "a number that does not apply (the precision / recall of a method that does not place galaxies) or is undefined "
    "(the scores of a method that painted nothing) holds MISSING_FILL = 0 with <name>_resolved False "
    "(docs/data-model.md, 'Missing values')"
)


def rows_table(rows: Mapping[str, Mapping[str, float]], meta: Mapping[str, Any]) -> Table:
    """Per-method numbers (:func:`score_rows` / :func:`mean_rows`) as a Table: one row per method (``method``
    index; names in meta ``method_<i>``), one float64 column per number and ``meta``. A number that does not apply
    or is undefined (NaN in ``rows``) follows the project's convention: the column holds
    :data:`~cosmoseg.data.table.MISSING_FILL` there and a boolean ``<name>_resolved`` column beside it is False
    (only columns with such a row get one); meta ``missing`` says so."""
    keys = list(next(iter(rows.values())))
    columns: dict[str, torch.Tensor] = {"method": torch.arange(len(rows))}
    for key in keys:
        values = torch.tensor([row[key] for row in rows.values()], dtype=torch.float64)
        resolved = torch.isfinite(values)
        columns[key] = torch.where(resolved, values, torch.full_like(values, MISSING_FILL))
        if not bool(resolved.all()):
            columns[resolved_column(key)] = resolved
    names = {f"method_{i}": name for i, name in enumerate(rows)}
    return Table(columns=columns, meta=names | dict(meta) | {"missing": MISSING_NOTE})


def mean_rows(reports: list[PaintReport]) -> dict[str, dict[str, float]]:
    """Per method, the mean over the test boxes of each :func:`score_rows` number (the boxes must share a grid, a
    side and the methods)."""
    if not reports:
        raise ValidationError("no report to average", context="paint evaluate")
    first = reports[0]
    for r in reports[1:]:
        if (r.length, r.fields["truth"].shape, list(r.scores)) != (first.length, first.fields["truth"].shape,
                                                                   list(first.scores)):  # fmt: skip
            raise ValidationError(
                f"test boxes {first.box} and {r.box} differ in side, grid or methods; their scores cannot be averaged",
                context="paint evaluate",
            )
    per_box = [score_rows(r) for r in reports]
    return {
        name: {key: sum(rows[name][key] for rows in per_box) / len(per_box) for key in per_box[0][name]}
        for name in per_box[0]
    }


def mean_table(reports: list[PaintReport]) -> Table:
    """:func:`mean_rows` as a Table (:func:`rows_table`): one row per method, one column per number (missing values
    as there), meta ``boxes`` (the test boxes averaged)."""
    return rows_table(mean_rows(reports), {"boxes": ",".join(r.box for r in reports)})


def _markdown(title: str, triangles: list[tuple[float, float]], rows: dict[str, dict[str, float]]) -> list[str]:
    bis_heads = " | ".join(f"mean abs(B/B_t - 1), k = {a:.2f}, {b:.2f}" for a, b in triangles)
    lines = [
        title,
        "| method | mean abs ln(P/P_t), k <= k_Ny/4 | max abs(P/P_t - 1), k <= k_Ny/4 | mean abs ln(P/P_t), k > k_Ny/4 "
        f"| {bis_heads} | PDF KS | total M* / truth | precision | recall |",
        "|---|---|---|---|" + "---|" * len(triangles) + "---|---|---|---|",
    ]
    for name, row in rows.items():
        occupancy = "n/a | n/a" if math.isnan(row["precision"]) else f"{row['precision']:.3f} | {row['recall']:.3f}"
        bis_values = " | ".join(f"{row[f'bispectrum_{i}']:.3f}" for i in range(len(triangles)))
        lines.append(
            f"| {name} | {row['power_score']:.4f} | {row['max_power_deviation']:.4f} | "
            f"{row['small_scale_score']:.4f} | {bis_values} | {row['pdf_ks']:.3f} | {row['total_mass_ratio']:.4f} | "
            f"{occupancy} |"
        )
    return lines


def summary_markdown(report: PaintReport) -> str:
    """The summary table of one box: per method, the P(k) score, the largest P(k) deviation for k ≤ k_Ny/4, the
    small-scale score, the mean |B/B_truth − 1| of each triangle, the KS distance of the PDF of log M*, the
    total-mass ratio and the occupancy precision / recall; then the extra numbers."""
    title = f"test box {report.box} ({report.length:g} Mpc/h)"
    lines = _markdown(title, _triangles(report), score_rows(report))
    lines += [f"{key}: {value:.4f}" for key, value in report.extra.items()]
    return "\n".join(lines)


def mean_markdown(reports: list[PaintReport]) -> str:
    """The summary table's numbers averaged over the test boxes (:func:`mean_rows`)."""
    title = f"mean over the {len(reports)} test boxes {', '.join(r.box for r in reports)}"
    return "\n".join(_markdown(title, _triangles(reports[0]), mean_rows(reports)))


def report_tables(reports: list[PaintReport]) -> dict[str, Table]:
    """The tables of ``evaluation.h5``: one test box's ``summary``, ``power``, ``bispectrum``, ``pdf``; several
    boxes' as ``<table>_<box>`` each (``summary_box_0002``), and ``summary_mean`` (:func:`mean_table`)."""
    if len(reports) == 1:
        return dict(reports[0].tables)
    tables = {f"{name}_{Path(r.box).stem}": table for r in reports for name, table in r.tables.items()}
    tables["summary_mean"] = mean_table(reports)
    return tables
