"""The ``cosmoseg galaxies`` commands (a thin layer over training.py)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from cosmoseg.pipeline.params import parse_key_values

app = typer.Typer(help="Halo -> galaxy samplers (Abramo et al.): train and evaluate on a suite.", no_args_is_help=True)

DEFAULT_CONDITIONS = "log_mass,log_vmax,concentration,spin,log_env_density_r2"
DEFAULT_TARGETS = "log_mstar,log_ssfr,color_gi,log_radius,log_z"
# --reverse targets: no concentration, which is 0 wherever unresolved (a spike a flow's density cannot hold)
DEFAULT_REVERSE_TARGETS = "log_mass,log_vmax,spin,log_env_density_r2"


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _markdown(table: Any, names: list[str], targets: list[str]) -> str:
    head = "| method | C2ST AUC | " + " | ".join(f"KS {t}" for t in targets) + " | mean W1 | cov68 | cov95 |"
    lines = [head, "|" + "---|" * (len(targets) + 5)]
    for i, name in enumerate(names):
        ks = " | ".join(f"{float(table[f'ks_{t}'][i]):.3f}" for t in targets)
        w1 = sum(float(table[f"w1_{t}"][i]) for t in targets) / len(targets)
        c68 = sum(float(table[f"cov68_{t}"][i]) for t in targets) / len(targets)
        c95 = sum(float(table[f"cov95_{t}"][i]) for t in targets) / len(targets)
        auc = f"{float(table['c2st_auc'][i]):.3f} ± {float(table['c2st_auc_err'][i]):.3f}"
        lines.append(f"| {name} | {auc} | {ks} | {w1:.3f} | {c68:.3f} | {c95:.3f} |")
    return "\n".join(lines)


@app.command("train")
def train_command(
    suite_dir: Annotated[Path, typer.Argument(help="Suite folder of `cosmoseg simulate` (box_*.h5 with halos).")],
    method: Annotated[str, typer.Option(help="flow, hival, gauss or regression.")] = "flow",
    conditions: Annotated[
        str | None, typer.Option(help=f"Halo properties, comma-separated (default {DEFAULT_CONDITIONS}).")
    ] = None,
    targets: Annotated[
        str | None, typer.Option(help=f"Galaxy properties, comma-separated (default {DEFAULT_TARGETS}).")
    ] = None,
    reverse: Annotated[
        bool,
        typer.Option(
            "--reverse",
            help="Learn p(halo | galaxy): --conditions are galaxy, --targets halo properties "
            f"(default {DEFAULT_TARGETS} -> {DEFAULT_REVERSE_TARGETS}).",
        ),
    ] = False,
    hyper: Annotated[list[str] | None, typer.Option(help="Hyper-parameter key=value (repeatable).")] = None,
    variant: Annotated[str, typer.Option(help="Galaxy-model variant that paints the truth.")] = "fiducial",
    n_validation: Annotated[int, typer.Option(help="Whole boxes held out for the metrics.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the split, the truth and the fit.")] = 0,
    output: Annotated[Path | None, typer.Option(help="Sampler file (default runs/galaxies/<method>.pt).")] = None,
) -> None:
    """Fit a sampler on the training boxes, score it on the held-out ones, and save it with a model card."""
    from cosmoseg.errors import CosmosegError
    from cosmoseg.galaxies.training import evaluate_samplers, find_boxes, split_boxes, suite_rows, train_sampler

    path = output or Path("runs") / "galaxies" / f"{method}{'-reverse' if reverse else ''}.pt"
    try:
        reversed_defaults = (DEFAULT_TARGETS, DEFAULT_REVERSE_TARGETS)
        default_cond, default_targ = reversed_defaults if reverse else (DEFAULT_CONDITIONS, DEFAULT_TARGETS)
        cond, targ = _names(conditions or default_cond), _names(targets or default_targ)
        train_paths, val_paths = split_boxes(find_boxes(suite_dir), n_validation, seed)
        sampler = train_sampler(
            method,
            train_paths,
            cond,
            targ,
            hyper=parse_key_values(hyper or [], "--hyper"),
            variant=variant,
            seed=seed,
            reverse=reverse,
        )
        card: dict[str, Any] = {
            "data": f"{suite_dir}: train {[p.name for p in train_paths]}, validate {[p.name for p in val_paths]}; "
            f"truth: galaxies.model variant {variant!r}, centrals" + ("; reverse: p(halo | galaxy)" if reverse else ""),
            "command": " ".join(
                shlex.quote(a)
                for a in [
                    *("cosmoseg", "galaxies", "train", str(suite_dir), "--method", method),
                    *("--conditions", ",".join(cond), "--targets", ",".join(targ), "--variant", variant),
                    *(("--reverse",) if reverse else ()),
                    *(item for h in (hyper or []) for item in ("--hyper", h)),
                    *("--n-validation", str(n_validation), "--seed", str(seed), "--output", str(path)),
                ]
            ),
        }
        if val_paths:
            x, y = suite_rows(val_paths, cond, targ, variant, seed, reverse=reverse)
            table = evaluate_samplers({method: sampler}, x, y, seed=seed)
            card["metrics"] = {k: float(v[0]) for k, v in table.columns.items() if k != "method"}
            print(_markdown(table, [method], targ))
        saved = sampler.save(path, card=card)
    except (CosmosegError, ValueError) as error:
        typer.echo(f"error: {' '.join(str(error).split())}", err=True)
        raise typer.Exit(1) from None
    print(f"sampler: {saved}")


@app.command("evaluate")
def evaluate_command(
    suite_dir: Annotated[Path, typer.Argument(help="Suite folder of `cosmoseg simulate`.")],
    model: Annotated[list[Path], typer.Option("--model", help="A fitted sampler file (repeatable).")],
    variant: Annotated[str, typer.Option(help="Galaxy-model variant that paints the truth.")] = "fiducial",
    n_validation: Annotated[int, typer.Option(help="Held-out boxes (the same split as training).")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the split (as in training) and of the draws.")] = 0,
    n_draws: Annotated[int, typer.Option(help="Draws per halo for the interval coverage.")] = 100,
    output: Annotated[Path, typer.Option(help="Folder for evaluation.h5.")] = Path("runs/galaxies/evaluation"),
    clustering: Annotated[
        bool | None,
        typer.Option(
            "--clustering/--no-clustering",
            help="Also P(k) ratio and bias of sub-populations (default: on when the boxes have 'fields').",
        ),
    ] = None,
    hod: Annotated[bool, typer.Option("--hod/--no-hod", help="Add a Zheng07 central HOD to the clustering.")] = True,
    figures: Annotated[
        Path | None, typer.Option(help="Folder for the colour-mass and P(k)-ratio figures (needs the clustering).")
    ] = None,
    reverse: Annotated[
        bool, typer.Option("--reverse", help="The samplers learn p(halo | galaxy) (trained with --reverse).")
    ] = False,
) -> None:
    """Compare fitted samplers on the held-out boxes: KS, W1, conditional C2ST, coverage; writes evaluation.h5.

    With the clustering, evaluation.h5 also holds ``clustering`` (per method and sub-population: number density,
    bias against the linear field, mean |P/P_truth - 1|) and ``clustering_curves`` (P(k) ratio per k bin).
    """
    from cosmoseg.data import save_artifact
    from cosmoseg.errors import CosmosegError
    from cosmoseg.galaxies.clustering import comparison_markdown, has_linear_field, run_clustering, write_figures
    from cosmoseg.galaxies.samplers.base import load_sampler
    from cosmoseg.galaxies.training import evaluate_samplers, find_boxes, split_boxes, suite_rows

    try:
        samplers = {}
        for path in model:
            sampler = load_sampler(path)
            samplers[f"{sampler.method} ({path.name})"] = sampler
        first = next(iter(samplers.values()))
        _, val_paths = split_boxes(find_boxes(suite_dir), n_validation, seed)
        if not val_paths:
            raise ValueError("--n-validation must be >= 1 to evaluate")
        x, y = suite_rows(val_paths, first.condition_names, first.target_names, variant, seed, reverse=reverse)
        for name, sampler in samplers.items():
            if sampler.condition_names != first.condition_names:
                raise ValueError(f"{name} is conditioned on {sampler.condition_names}, not {first.condition_names}")
        table = evaluate_samplers(samplers, x, y, n_draws=n_draws, seed=seed)
        objects = {"scores": table}
        report = ""
        if clustering and reverse:
            raise ValueError("--clustering compares galaxy samples: it does not apply to --reverse samplers")
        if clustering is None:
            clustering = not reverse and has_linear_field(val_paths[0])
        if clustering:
            result = run_clustering(suite_dir, samplers, n_validation=n_validation, variant=variant, seed=seed, hod=hod)
            objects |= {"clustering": result.summary, "clustering_curves": result.curves}
            report = comparison_markdown(result.summary, table, first.target_names)
            if figures is not None:
                write_figures(result, figures)
        elif figures is not None:
            raise ValueError("--figures needs the clustering (boxes with 'fields', and not --no-clustering)")
        saved = save_artifact(output / "evaluation.h5", objects)
    except (CosmosegError, ValueError) as error:
        typer.echo(f"error: {' '.join(str(error).split())}", err=True)
        raise typer.Exit(1) from None
    print(_markdown(table, list(samplers), first.target_names))
    if report:
        print(report)
    print(f"evaluation: {saved}")
