"""Issue #21: protohalo model pairs side by side on held-out boxes, a second suite seed, and the twin baseline.

    D=cosmoseg/protohalo/default_models
    python benchmarks/protohalo_instances.py \
        --pair default $D/semantic.pt $D/instance.pt --pair paper $D/paper/semantic.pt $D/paper/instance.pt \
        --pair offsets $D/paper/semantic.pt runs/ph-offsets/offsets.pt \
        --pair panoptic runs/ph-panoptic/panoptic.pt - \
        --set held-out suites/protohalo-64/box_0007.h5 suites/protohalo-64/box_0001.h5 \
        --set seed2 suites/protohalo-64-seed2/box_000*.h5 \
        --twins suites/protohalo-64-twins/box_*.h5 [--symmetries 8] [--figures docs/img/protohalo]

Every pair (``--pair NAME SEMANTIC INSTANCE``; ``-`` as INSTANCE for a panoptic net) is scored on every set of
boxes with :func:`cosmoseg.protohalo.evaluation.evaluate` (the tables of ``cosmoseg protohalo evaluate``); with
``--symmetries K`` > 1 every centre-offsets pair is also scored with test-time augmentation over K cube symmetries.
Prints markdown tables: the semantic F1 and the instance precision / recall (every predicted halo, then those
above the labelling limit), the predicted / FoF mass function ratio per mass bin, and the Eulerian errors of the
matched haloes (mass ratio, 2LPT position error), and the instance recall by FoF mass and precision by predicted
mass (IoU >= 0.5). The twins give the baseline row, mass function and recall / precision by mass. With --figures,
``instances_mass_function.png``, ``instances_eulerian.png`` and ``instances_by_mass.png`` (the first set, the runs
without TTA) are written.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from cosmoseg.data import Table
from cosmoseg.measure.figures import plot_mass_function, save_figure
from cosmoseg.protohalo.evaluation import evaluate
from cosmoseg.protohalo.pretrained import load_model_pair

TTA = " + TTA "
"""In the name of a pair's run with test-time augmentation; the figures leave those runs out (the tables have them)."""


def _row(scores: Table, source: int) -> dict[str, float]:
    index = int(torch.nonzero(scores["source"] == source)[0])
    return {key: float(scores[key][index]) for key in scores.columns}


def scores_markdown(results: dict[tuple[str, str], dict[str, Table]], twins: dict[str, float] | None) -> str:
    lines = [
        "| pair | boxes | semantic F1 | precision / recall | labelled precision / recall | predicted / true haloes |",
        "|---|---|---|---|---|---|",
    ]
    for (pair, boxes), tables in results.items():
        r = _row(tables["scores"], 0)
        lines.append(
            f"| {pair} | {boxes} | {r['F1']:.3f} | {r['instance_precision']:.3f} / {r['instance_recall']:.3f} | "
            f"{r['instance_precision_labelled']:.3f} / {r['instance_recall_labelled']:.3f} | "
            f"{int(r['n_pred_haloes'])} / {int(r['n_true_haloes'])} |"
        )
    if twins:
        lines.append(
            f"| twin baseline | twins | {twins['F1']:.3f} | {twins['instance_precision']:.3f} / "
            f"{twins['instance_recall']:.3f} | | {int(twins['n_pred_haloes'])} / {int(twins['n_true_haloes'])} |"
        )
    return "\n".join(lines)


def _ratio_text(n_pred: float, n_true: float, scale: float = 1.0) -> str:
    """``scale · n_pred / n_true`` with its Poisson error (scale: the ratio of the volumes, true over predicted)."""
    if n_true == 0:
        return "–"
    ratio = scale * n_pred / n_true
    error = ratio * math.sqrt(1 / n_true + 1 / n_pred) if n_pred else float("nan")
    return f"{ratio:.2f} ± {error:.2f}" if math.isfinite(error) else f"{ratio:.2f}"


def mass_function_markdown(results: dict[tuple[str, str], dict[str, Table]], boxes: str) -> str:
    """Predicted / FoF counts per mass bin (every evaluation has the same bins, ``--mass-bins``)."""
    chosen = {pair: tables["mass_function"] for (pair, name), tables in results.items() if name == boxes}
    first = next(iter(chosen.values()))
    masses = " | ".join(f"{float(m):.2g}" for m in first["m_mid"])
    lines = [f"| M (Msun/h) | {masses} |", "|---" * (len(first["m_mid"]) + 1) + "|"]
    lines.append("| FoF haloes | " + " | ".join(str(int(c)) for c in first["counts_true"]) + " |")
    if "counts_twins" in first.columns:
        counts = zip(
            first["counts_twins"], first["counts_true"], first["dndlnm_twins"], first["dndlnm_true"], strict=True
        )
        ratios = [
            _ratio_text(float(n_t), float(n_f), float(d_t * n_f / (d_f * n_t)) if n_t and n_f else 1.0)
            for n_t, n_f, d_t, d_f in counts
        ]
        lines.append("| twins / FoF (per volume) | " + " | ".join(ratios) + " |")
    for pair, mf in chosen.items():
        cells = [_ratio_text(float(p), float(t)) for p, t in zip(mf["counts_pred"], mf["counts_true"], strict=True)]
        lines.append(f"| {pair} / FoF | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def eulerian_markdown(results: dict[tuple[str, str], dict[str, Table]], boxes: str) -> str:
    lines = [
        "| pair | log10 M_FoF | FoF haloes | matched | log10 M_pred/M_FoF: median [16%, 84%] | "
        "\\|Δx\\| (Mpc/h): median [16%, 84%] |",
        "|---|---|---|---|---|---|",
    ]
    placed = False
    for (pair, name), tables in results.items():
        if name != boxes or "eulerian" not in tables:
            continue
        table = tables["eulerian"]
        for source in (0, 1):
            if source == 1 and placed:
                continue
            label = pair if source == 0 else "true segmentation + 2LPT"
            rows = torch.nonzero((table["source"] == source) & (table["n_fof"] > 0)).reshape(-1)
            for j in rows.tolist():
                c = {key: float(table[key][j]) for key in table.columns}
                span = f"{math.log10(c['m_low']):.2f}–{math.log10(c['m_high']):.2f}"
                if c["n_matched"] == 0:
                    lines.append(f"| {label} | {span} | {int(c['n_fof'])} | 0 | – | – |")
                    continue
                lines.append(
                    f"| {label} | {span} | {int(c['n_fof'])} | {int(c['n_matched'])} | "
                    f"{c['log_mass_ratio_q50']:+.3f} "
                    f"[{c['log_mass_ratio_q16']:+.3f}, {c['log_mass_ratio_q84']:+.3f}] | "
                    f"{c['pos_error_q50']:.2f} [{c['pos_error_q16']:.2f}, {c['pos_error_q84']:.2f}] |"
                )
        placed = True
    return "\n".join(lines)


def figure_mass_function(results: dict[tuple[str, str], dict[str, Table]], boxes: str, path: Path) -> Path:
    chosen = {
        pair: tables["mass_function"] for (pair, name), tables in results.items() if name == boxes and TTA not in pair
    }
    first = next(iter(chosen.values()))
    have = (first["counts_true"] > 0).numpy()
    curves = {f"{pair}": mf["dndlnm_pred"].numpy()[have] for pair, mf in chosen.items()}
    errors = {f"{pair}": mf["dndlnm_pred_err"].numpy()[have] for pair, mf in chosen.items()}
    if "dndlnm_twins" in first.columns:
        curves["twins"] = first["dndlnm_twins"].numpy()[have]
    plot_mass_function(
        first["m_mid"].numpy()[have],
        curves,
        error=errors,
        reference={"FoF": first["dndlnm_true"].numpy()[have]},
        reference_error=first["dndlnm_true_err"].numpy()[have],
        reference_label="FoF",
        field=f"protohaloes, {boxes} boxes",
        path=path,
    )
    return path


def _binomial(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fraction k / n and its binomial standard error (NaN where n = 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(n > 0, k / np.maximum(n, 1), np.nan)
        return f, np.where(n > 0, np.sqrt(f * (1 - f) / np.maximum(n, 1)), np.nan)


def _by_mass_series(
    results: dict[tuple[str, str], dict[str, Table]], boxes: str, twins: bool = True
) -> list[tuple[str, Table, int]]:
    """(label, per_mass table, source) of every pair on ``boxes`` without TTA, then the twins (source 1) once."""
    series = [
        (pair, tables["per_mass"], 0) for (pair, name), tables in results.items() if name == boxes and TTA not in pair
    ]
    if twins and series:
        first = series[0][1]
        if bool((first["source"] == 1).any()):
            series.append(("twins", first, 1))
    return series


def by_mass_markdown(results: dict[tuple[str, str], dict[str, Table]], boxes: str) -> str:
    """Instance recall (matched / FoF haloes, by FoF mass) and precision (by predicted mass) per mass bin."""
    series = _by_mass_series(results, boxes)
    first = series[0][1]
    rows = (first["source"] == 0).numpy()
    masses = " | ".join(f"{float(m):.2g}" for m in first["m_mid"].numpy()[rows])
    lines = [f"| recall / precision at M (Msun/h) | {masses} |", "|---" * (int(rows.sum()) + 1) + "|"]
    for label, table, source in series:
        keep = (table["source"] == source).numpy()
        cells = []
        for k_t, n_t, k_p, n_p in zip(
            *(
                table[key].numpy()[keep]
                for key in ("n_true_matched", "n_true_haloes", "n_pred_matched", "n_pred_haloes")
            ),
            strict=True,
        ):
            recall = f"{k_t / n_t:.2f}" if n_t else "–"
            precision = f"{k_p / n_p:.2f}" if n_p else "–"
            cells.append(f"{recall} / {precision} ({int(n_t)})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure_by_mass(results: dict[tuple[str, str], dict[str, Table]], boxes: str, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.8))
    recall_axis, precision_axis = fig.subplots(1, 2, sharey=True)
    series = _by_mass_series(results, boxes)
    for k, (label, table, source) in enumerate(series):
        keep = (table["source"] == source).numpy()
        dodge = 10.0 ** (0.015 * (k - (len(series) - 1) / 2))
        m = table["m_mid"].numpy()[keep] * dodge
        style = {"marker": "s" if label == "twins" else "o", "ms": 4, "capsize": 2, "label": label}
        if label == "twins":
            style |= {"color": "k", "ls": "--"}
        for axis, matched, total in (
            (recall_axis, "n_true_matched", "n_true_haloes"),
            (precision_axis, "n_pred_matched", "n_pred_haloes"),
        ):
            f, err = _binomial(table[matched].numpy()[keep], table[total].numpy()[keep])
            have = np.isfinite(f)
            axis.errorbar(m[have], f[have], yerr=err[have], **style)
    recall_axis.set_ylabel("fraction matched at IoU ≥ 0.5")
    recall_axis.set_xlabel(r"$M_{\rm FoF}$ [$M_\odot/h$]")
    precision_axis.set_xlabel(r"$M_{\rm pred}$ [$M_\odot/h$]")
    recall_axis.set_title("recall (by FoF mass)", fontsize=9)
    precision_axis.set_title("precision (by predicted mass)", fontsize=9)
    for axis in (recall_axis, precision_axis):
        axis.set_xscale("log")
        axis.set_ylim(0.0, 1.0)
        axis.axhline(0.65, color="0.6", lw=0.8, ls=":")
    recall_axis.legend(fontsize=7, title=f"{boxes} boxes (binomial errors)", title_fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def figure_eulerian(results: dict[tuple[str, str], dict[str, Table]], boxes: str, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.8))
    mass_axis, pos_axis = fig.subplots(1, 2)
    series = [
        (pair, tables["eulerian"], source)
        for (pair, name), tables in results.items()
        if name == boxes and "eulerian" in tables and TTA not in pair
        for source in (0, 1)
    ]
    series = [item for i, item in enumerate(series) if item[2] == 0 or i == 1]  # the true segmentation once
    for k, (pair, table, source) in enumerate(series):
        keep = ((table["source"] == source) & (table["n_matched"] > 0)).numpy()
        dodge = 10.0 ** (0.02 * (k - (len(series) - 1) / 2))  # side by side within a bin, so the bars stay apart
        m = table["m_mid"].numpy()[keep] * dodge
        label = pair if source == 0 else "true segmentation + 2LPT"
        style = {"marker": "o" if source == 0 else "s", "ms": 4, "capsize": 2, "label": label}
        for axis, prefix in ((mass_axis, "log_mass_ratio"), (pos_axis, "pos_error")):
            q16, q50, q84 = (table[f"{prefix}_q{q}"].numpy()[keep] for q in ("16", "50", "84"))
            axis.errorbar(m, q50, yerr=np.stack([q50 - q16, q84 - q50]), **style)
    mass_axis.axhline(0.0, color="0.5", lw=0.8)
    mass_axis.set_ylabel(r"$\log_{10} M_{\rm pred}/M_{\rm FoF}$ (median, 16–84%)")
    pos_axis.set_ylabel(r"$|\Delta x|$ to the FoF centre [Mpc/$h$] (median, 16–84%)")
    for axis in (mass_axis, pos_axis):
        axis.set_xscale("log")
        axis.set_xlabel(r"$M_{\rm FoF}$ [$M_\odot/h$]")
    mass_axis.legend(fontsize=7, title=f"matched haloes, {boxes} boxes", title_fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", nargs=3, action="append", required=True, metavar=("NAME", "SEMANTIC", "INSTANCE"))
    parser.add_argument("--set", nargs="+", action="append", required=True, metavar="NAME BOX", dest="sets")
    parser.add_argument("--twins", nargs="*", type=Path, default=[])
    parser.add_argument("--symmetries", type=int, default=1, help="also score offsets pairs with this TTA")
    parser.add_argument(
        "--mass-bins",
        nargs=3,
        type=float,
        default=(12.25, 15.0, 0.25),
        metavar=("LOG10_LOW", "LOG10_HIGH", "DEX"),
        help="the shared bins of the mass function and of the Eulerian errors",
    )
    parser.add_argument("--figures", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    runs: list[tuple[str, str, str | None, int]] = []
    for name, semantic, instance in args.pair:
        runs.append((name, semantic, None if instance == "-" else instance, 1))
        if args.symmetries > 1 and load_model_pair(semantic, None if instance == "-" else instance).kind != "embedding":
            runs.append(
                (f"{name}{TTA}{args.symmetries}", semantic, None if instance == "-" else instance, args.symmetries)
            )
    results: dict[tuple[str, str], dict[str, Table]] = {}
    twins_row = None
    low, high, step = args.mass_bins
    edges = [10.0 ** (low + step * k) for k in range(round((high - low) / step) + 1)]
    for set_name, *boxes in args.sets:
        for name, semantic, instance, symmetries in runs:
            start = time.perf_counter()
            tables = evaluate(
                semantic,
                instance,
                [Path(b) for b in boxes],
                twin_paths=args.twins,
                device=args.device,
                symmetries=symmetries,
                mass_edges=edges,
            )
            print(f"{name} on {set_name} ({len(boxes)} boxes): {time.perf_counter() - start:.1f} s")
            results[(name, set_name)] = tables
            if args.twins and twins_row is None:
                twins_row = _row(tables["scores"], 1)
    print("\n" + scores_markdown(results, twins_row))
    for set_name, *_ in args.sets:
        print(f"\nmass function, {set_name} boxes:\n" + mass_function_markdown(results, set_name))
        print(f"\nEulerian errors, {set_name} boxes:\n" + eulerian_markdown(results, set_name))
        print(
            f"\ninstance recall / precision by mass (FoF haloes), {set_name} boxes:\n"
            + by_mass_markdown(results, set_name)
        )
    if args.figures:
        first = args.sets[0][0]
        args.figures.mkdir(parents=True, exist_ok=True)
        for path in (
            figure_mass_function(results, first, args.figures / "instances_mass_function.png"),
            figure_eulerian(results, first, args.figures / "instances_eulerian.png"),
            figure_by_mass(results, first, args.figures / "instances_by_mass.png"),
        ):
            print(f"figure: {path}")


if __name__ == "__main__":
    main()
