"""From a folder of galaxy catalogs to a trained, scored model; and scoring models on held-out boxes.

:func:`train_from_folder` splits the boxes by simulation, trains (:func:`cosmoseg.infer.training.train_model`),
scores the held-out test boxes and saves the model with its card (metadata). :func:`evaluate_models` scores any
number of model files on the test (or all) boxes of a folder, which may hold the other galaxy-model variant's
catalogs of the same boxes (the cross-variant test), with the model's systematics or others; it writes
``evaluation.h5`` (one metrics table and one TARP table per model) and the figures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from cosmoseg.data import GalaxyCatalog, ParameterEstimate, Table, save_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.infer.graphs import GraphSpec, edge_feature_names, global_feature_names, node_feature_names
from cosmoseg.infer.systematics import parse_systematics
from cosmoseg.infer.training import (
    PARAMETERS,
    TrainSettings,
    build_graphs,
    check_catalog_for_model,
    estimate,
    graph_spec_of,
    load_catalogs,
    load_model,
    parameters_of,
    save_model,
    train_model,
)
from cosmoseg.measure.inference import PAIRED_KEYS, inference_metrics, inference_table, paired_shift
from cosmoseg.measure.tarp import tarp_table
from cosmoseg.nn.distributed import barrier, is_main_process
from cosmoseg.sim.suites import split_suite

__all__ = ["evaluate_models", "metrics_line", "prior_box", "train_from_folder"]


def prior_box(folder: Path, catalogs: dict[int, GalaxyCatalog]) -> tuple[list[float], list[float]]:
    """The prior (low, high) of :data:`PARAMETERS`: the suite's Latin hypercube (``suite.json`` in the folder or its
    parent), else the range of the catalogs' true values."""
    for candidate in (folder / "suite.json", folder.parent / "suite.json"):
        if candidate.is_file():
            hypercube = json.loads(candidate.read_text()).get("settings", {}).get("latin_hypercube", {})
            if all(name in hypercube for name in PARAMETERS):
                return [float(hypercube[n][0]) for n in PARAMETERS], [float(hypercube[n][1]) for n in PARAMETERS]
    truths = torch.stack([parameters_of(c) for c in catalogs.values()])
    low, high = truths.min(dim=0).values, truths.max(dim=0).values
    pad = torch.clamp((high - low) * 0.05, min=1e-3)
    return (low - pad).tolist(), (high + pad).tolist()


def metrics_line(metrics: dict[str, dict[str, float]], name: str = "omega_m") -> str:
    m = metrics[name]
    return (
        f"{name}: RMSE {m['rmse']:.4f}, ε {m['relative_error']:.3f}, R² {m['r2']:.3f}, χ² {m['chi2']:.2f} "
        f"(> 10: {m['outlier_fraction']:.3f}), coverage 68% {m['coverage_68']:.3f} / 95% {m['coverage_95']:.3f}"
    )


def train_from_folder(
    folder: str | Path,
    spec: GraphSpec,
    systematics: str,
    settings: TrainSettings,
    *,
    n_validation: int,
    n_test: int,
    seed: int,
    device: torch.device,
    command: str,
    output: str | Path,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[Path, str]:
    """Train on ``folder``'s boxes (split by simulation), score the test boxes, save the model; returns its path and
    a line of test metrics."""
    folder = Path(folder)
    effects = parse_systematics(systematics)
    catalogs = load_catalogs(folder)
    indices = sorted(catalogs)
    split = split_suite(len(indices), n_validation, n_test, seed=seed)
    roles = {role: split.pick(indices, role) for role in ("train", "validation", "test")}
    log(f"{len(indices)} boxes: {len(roles['train'])} train, {len(roles['validation'])} validation, "
        f"{len(roles['test'])} test")  # fmt: skip
    lengths = {float(c.box.length) for c in catalogs.values()}
    if len(lengths) != 1:
        raise ValidationError(f"{folder}: the boxes have different sizes {sorted(lengths)}; train on one box size")
    prior = prior_box(folder, catalogs)
    started = time.perf_counter()
    model, history = train_model(
        {i: catalogs[i] for i in roles["train"]},
        {i: catalogs[i] for i in roles["validation"]},
        spec,
        effects,
        settings,
        prior=prior,
        seed=seed,
        device=device,
        log=log,
    )
    train_seconds = time.perf_counter() - started
    metrics_text = "no test boxes"
    test_metrics: dict[str, Any] = {}
    if roles["test"]:
        graphs = build_graphs({i: catalogs[i] for i in roles["test"]}, spec, effects, seed=seed)
        result = estimate(model, graphs, generator=torch.Generator(device=device).manual_seed(seed))
        test_metrics = inference_metrics(result)
        metrics_text = metrics_line(test_metrics)
    n_galaxies = [len(c) for c in catalogs.values()]
    first = next(iter(catalogs.values()))
    metadata = {
        "command": command,
        "data": str(folder),
        "galaxy_model": str(first.meta.get("galaxy_model", "")),
        "box_length": float(first.box.length),
        "redshift": float(first.box.redshift),
        "galaxies_per_box": [min(n_galaxies), sum(n_galaxies) / len(n_galaxies), max(n_galaxies)],
        "graph": {
            "r_link": spec.r_link,
            "velocities": spec.velocities,
            "properties": list(spec.properties),
            "los_axis": spec.los_axis,
            "velocity_unit": spec.velocity_unit,
        },
        "node_feature_names": node_feature_names(spec),
        "edge_feature_names": edge_feature_names(spec),
        "global_feature_names": global_feature_names(spec),
        "systematics": effects.describe(),
        "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
        "prior_low": prior[0],
        "prior_high": prior[1],
        "seed": seed,
        "split": {role: list(v) for role, v in roles.items()},
        "epochs": int(history["epochs"]),
        "best_epoch": int(history["best_epoch"]),
        "seconds_per_epoch": float(history["seconds_per_epoch"]),
        "train_seconds": train_seconds,
        "validation_loss": [float(v) for v in history["validation_loss"]],
        "train_loss": [float(v) for v in history["train_loss"]],
        "test_metrics": {k: {kk: float(vv) for kk, vv in v.items()} for k, v in test_metrics.items()},
    }
    if not is_main_process():  # under torchrun every rank holds the same model: rank 0 writes it
        barrier()
        return Path(output), metrics_text
    path = save_model(output, model, metadata)
    barrier()
    return path, metrics_text


def _boxes_of(meta: dict[str, Any], role: str, available: Sequence[int], model_path: Path) -> list[int]:
    if role == "all":
        return list(available)
    wanted = [int(i) for i in meta.get("split", {}).get(role, [])]
    chosen = [i for i in wanted if i in set(available)]
    if not chosen:
        raise ValidationError(f"{model_path}: none of its {role} boxes {wanted[:8]}... is in the folder")
    return chosen


def evaluate_models(
    folder: str | Path,
    models: Sequence[str | Path],
    *,
    boxes: str = "test",
    systematics: str | None = None,
    n_samples: int = 1000,
    seed: int = 0,
    device: torch.device,
    output: str | Path,
    reference: str | Path | None = None,
    figures: bool = True,
) -> str:
    """Score every model on ``folder``'s boxes of the role ``boxes``; write ``output``/evaluation.h5 and figures.

    ``reference``: another folder of catalogs of the same boxes (e.g. the N-body-built ones when ``folder`` holds
    those built from the initial conditions alone); each model is also run on it, observed with the same effects and
    draws, and a second table gives the box-by-box shift of the estimates from the reference's
    (:func:`~cosmoseg.measure.inference.paired_shift`) and the ratio of the galaxy counts.
    Returns a markdown table (one row per model: Ω_m and σ_8 metrics, TARP area), then the paired one.
    """
    folder, out = Path(folder), Path(output)
    catalogs = load_catalogs(folder)
    tables: dict[str, Table] = {}
    rows, paired_rows = [], []
    estimates: dict[str, ParameterEstimate] = {}
    references: dict[str, ParameterEstimate] = {}
    reference_catalogs: dict[tuple[int, ...], dict[int, GalaxyCatalog]] = {}
    for number, model_path in enumerate(models):
        model_path = Path(model_path)
        model, meta = load_model(model_path, device)
        chosen = _boxes_of(meta, boxes, sorted(catalogs), model_path)
        subset = {i: catalogs[i] for i in chosen}
        for index, catalog in subset.items():
            check_catalog_for_model(catalog, meta, f"{folder}/galaxies_{index:04d}.h5")
        effects = parse_systematics(meta.get("systematics", "") if systematics is None else systematics)
        spec = graph_spec_of(meta)
        graphs = build_graphs(subset, spec, effects, seed=seed + 1)
        generator = torch.Generator(device=device).manual_seed(seed)
        started = time.perf_counter()
        result = estimate(model, graphs, n_samples=n_samples, generator=generator)
        seconds = (time.perf_counter() - started) / max(len(graphs), 1)
        label = model_path.stem
        estimates[label] = result
        if reference is not None:
            if tuple(chosen) not in reference_catalogs:  # models of one split share the reference's files
                reference_catalogs[tuple(chosen)] = load_catalogs(reference, chosen)
            ref_catalogs = reference_catalogs[tuple(chosen)]
            for index, catalog in ref_catalogs.items():
                check_catalog_for_model(catalog, meta, f"{reference}/galaxies_{index:04d}.h5")
            ref_graphs = build_graphs(ref_catalogs, spec, effects, seed=seed + 1)
            generator = torch.Generator(device=device).manual_seed(seed)
            references[label] = estimate(model, ref_graphs, n_samples=n_samples, generator=generator)
            shift = paired_shift(result, references[label])
            counts = torch.tensor([len(subset[i]) / max(len(ref_catalogs[i]), 1) for i in chosen], dtype=torch.float64)
            paired_rows.append(_paired_row(label, shift, counts, inference_metrics(references[label])))
            tables[f"paired_{number}"] = _paired_table(shift, counts, label)
        metrics = inference_metrics(result)
        table = inference_table(result, label=label)
        tarp = tarp_table(
            result,
            low=meta["prior_low"],
            high=meta["prior_high"],
            n_samples=n_samples,
            generator=torch.Generator().manual_seed(seed),
            label=label,
        )
        tables[f"metrics_{number}"] = table
        tables[f"tarp_{number}"] = tarp
        om, s8 = metrics["omega_m"], metrics["sigma_8"]
        rows.append(
            f"| {label} | {meta.get('galaxy_model', '')} → {catalogs[chosen[0]].meta.get('galaxy_model', '')} "
            f"| {effects.describe() or 'none'} | {len(chosen)} | {om['rmse']:.4f} | {om['relative_error']:.3f} "
            f"| {om['r2']:.3f} | {om['chi2']:.2f} | {om['outlier_fraction']:.3f} | {om['coverage_68']:.3f} "
            f"| {om['coverage_95']:.3f} | {float(tarp.meta['area']):.3f} | {s8['relative_error']:.3f} "
            f"| {s8['r2']:.3f} | {seconds * 1e3:.1f} |"
        )
    header = (
        "| model | trained on → scored on | systematics | boxes | Ω_m RMSE | Ω_m ε | Ω_m R² | χ² | χ² > 10 | cov 68% "
        "| cov 95% | TARP area | σ_8 ε | σ_8 R² | ms / catalog |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    text = "\n".join([header, *rows])
    if paired_rows:
        text += (
            f"\n\nBox by box against the reference {reference} (Δ = estimate − reference's; σ_ref its σ):\n\n"
            "| model | reference Ω_m ε | Δ Ω_m mean | Δ Ω_m RMS | RMS Δ/σ_ref | |Δ| < σ_ref | σ / σ_ref "
            "| N_gal / N_gal,ref (median, 16–84%) |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(paired_rows)
        )
    out.mkdir(parents=True, exist_ok=True)
    attrs = {"galaxies": str(folder), "boxes": boxes} | ({"reference": str(reference)} if reference else {})
    save_artifact(out / "evaluation.h5", tables, attrs=attrs)
    if figures:
        _write_figures(
            out,
            estimates,
            tables,
            references,
            label=folder.name if reference else "",
            reference_label=Path(reference).name if reference else "",
        )
    (out / "evaluation.md").write_text(text + "\n")
    return text


def _paired_row(
    label: str, shift: dict[str, dict[str, float]], counts: torch.Tensor, reference_metrics: dict[str, dict[str, float]]
) -> str:
    om = shift["omega_m"]
    low, mid, high = torch.quantile(counts, torch.tensor([0.16, 0.5, 0.84], dtype=torch.float64)).tolist()
    return (
        f"| {label} | {reference_metrics['omega_m']['relative_error']:.3f} | {om['mean_shift']:+.4f} "
        f"| {om['rms_shift']:.4f} | {om['rms_shift_in_sigma']:.2f} | {om['within_1sigma']:.2f} "
        f"| {om['sigma_ratio']:.2f} | {mid:.2f} ({low:.2f}–{high:.2f}) |"
    )


def _paired_table(shift: dict[str, dict[str, float]], counts: torch.Tensor, label: str) -> Table:
    """The paired shifts, one row per parameter, with the galaxy-count ratios' median in meta."""
    columns: dict[str, torch.Tensor] = {"parameter": torch.arange(len(PARAMETERS))}
    for key in PAIRED_KEYS:
        columns[key] = torch.tensor([shift[name][key] for name in PARAMETERS], dtype=torch.float64)
    meta: dict[str, str | int | float | bool] = {f"parameter_{i}": name for i, name in enumerate(PARAMETERS)}
    meta |= {"kind": "paired_shift", "label": label, "galaxy_count_ratio_median": float(counts.median())}
    return Table(columns=columns, meta=meta)


def _write_figures(
    out: Path,
    estimates: dict[str, ParameterEstimate],
    tables: dict[str, Table],
    references: dict[str, ParameterEstimate] | None = None,
    label: str = "",
    reference_label: str = "",
) -> None:
    from cosmoseg.measure.figures import figure_for_table, plot_predicted_vs_true, save_figure

    references = references or {}
    for model_label, result in estimates.items():
        for name in PARAMETERS:
            fig = plot_predicted_vs_true(
                result,
                name,
                label=label,
                reference=references.get(model_label),
                reference_label=reference_label or "reference",
            )
            save_figure(fig, out / f"{model_label}_{name}.png")
    tarps = [t for key, t in tables.items() if key.startswith("tarp_")]
    for table in tarps:
        _, fig = figure_for_table(table)
        save_figure(fig, out / f"{table.meta.get('label', 'model')}_tarp.png")
