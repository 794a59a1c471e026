"""The ``cosmoseg paint`` commands: a thin layer over training.py, report.py and figures.py, with the command kit of
:mod:`cosmoseg.pipeline.commands` (errors one problem per line, the shared options, the invocation a model card
records)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cosmoseg.pipeline.commands import NTestOption, NValidationOption, invocation, report_errors
from cosmoseg.pipeline.params import parse_key_values

app = typer.Typer(help="dm2gal (Kasmanoff et al.): paint stellar mass onto gravity-only fields.", no_args_is_help=True)


@app.command("train")
def train_command(
    ctx: typer.Context,
    suite_dir: Annotated[Path, typer.Argument(help="Suite folder of `cosmoseg simulate` with particles and halos.")],
    kind: Annotated[str, typer.Option(help="fcn (the successor, default) or dm2gal (the per-voxel network).")] = "fcn",
    grid: Annotated[int, typer.Option(help="Grid of the fields (0 = the particle grid).")] = 0,
    halo_assignment: Annotated[str, typer.Option(help="Halo field assignment: ngp or cic.")] = "ngp",
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 2000,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = 4,
    tile: Annotated[int, typer.Option(help="Output side of a successor training crop (voxels).")] = 32,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-3,
    cosine: Annotated[bool, typer.Option(help="Cosine decay of the learning rate to lr / 100.")] = True,
    select_on_draws: Annotated[
        bool, typer.Option(help="Select the successor on fixed-seed draws of its masses (else the conditional means).")
    ] = True,
    selection_draws: Annotated[int, typer.Option(help="Draws scored per validation box (mean score).")] = 4,
    eval_every: Annotated[int, typer.Option(help="Steps between validations (checkpoint selection by P(k)).")] = 200,
    threshold: Annotated[float, typer.Option(help="M* (Msun/h) above which a voxel hosts a galaxy.")] = 1e8,
    max_weight: Annotated[float, typer.Option(help="Cap on a voxel's mass-loss weight (x the mean; 0 = none).")] = 10.0,
    mass_weighting: Annotated[
        str,
        typer.Option(
            help="Successor mass-loss weights: none, host_mass (inverse count of the heaviest halo within the voxel's "
            "3^3) or inverse_count (of its own M*, the paper's)."
        ),
    ] = "none",
    arch: Annotated[
        list[str] | None,
        typer.Option(
            help="Architecture key=value. fcn: local, local_layers, context, context_layers, pool, hidden, components, "
            "linear (0 or 1), hinges (0 or 1); "
            "dm2gal: channels=[8,8,16,16,32,32], hidden, large_kernel."
        ),
    ] = None,
    galaxy_stage: Annotated[str, typer.Option(help="Registered stage painting the truth galaxies.")] = "galaxies.model",
    galaxy_param: Annotated[list[str] | None, typer.Option(help="Its params, key=value (repeatable).")] = None,
    n_validation: NValidationOption = 1,
    n_test: NTestOption = 1,
    seed: Annotated[int, typer.Option(help="Seed of the split, the truth, the initialisation and the crops.")] = 0,
    output: Annotated[Path | None, typer.Option(help="Model file (default runs/paint/<kind>.pt).")] = None,
) -> None:
    """Train a dm2gal network on a suite; the checkpoint whose validation P(k) is closest to the truth (the mean score
    of the validation boxes) is saved, with a card whose command is this one (it reruns the training).

    Under `torchrun --nproc-per-node N -m cosmoseg.cli paint train ...` the N processes train data-parallel on the
    CPU (gloo): each takes its share of every batch of --batch crops (the same weights as one process) and rank 0
    writes the model and prints."""
    import torch

    from cosmoseg.nn.distributed import barrier, init_from_env, is_main_process, shutdown
    from cosmoseg.paint.models import build_model, save_paint_model
    from cosmoseg.paint.suite import load_split, registry_truth
    from cosmoseg.paint.training import TrainConfig, train_dm2gal, train_fcn

    path = output or Path("runs") / "paint" / f"{kind}.pt"
    with report_errors():
        init_from_env("cpu")  # under torchrun: joins the process group (gloo; paint trains on the CPU)
        main_process = is_main_process()
        try:
            truth = registry_truth(galaxy_stage, parse_key_values(galaxy_param or [], "--galaxy-param"), seed)
            split = load_split(suite_dir, truth, grid=grid, n_validation=n_validation, n_test=n_test, seed=seed,
                               halo_assignment=halo_assignment)  # fmt: skip
            if not split.validation:
                raise ValueError("--n-validation must be >= 1: the validation box selects the checkpoint")
            settings = {
                "steps": steps,
                "batch": batch,
                "tile": tile,
                "lr": lr,
                "eval_every": eval_every,
                "cosine": cosine,
            }
            config = TrainConfig(**settings, threshold=threshold, max_weight=max_weight,
                                 mass_weighting=mass_weighting,
                                 select_on_draws=select_on_draws, selection_draws=selection_draws)  # fmt: skip
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = build_model(kind, **parse_key_values(arch or [], "--arch"))
            trainer = train_fcn if kind == "fcn" else train_dm2gal

            def progress(step: int, loss: float, score: float | None) -> None:
                if main_process:
                    print(f"step {step}: loss {loss:.4f}, validation mean |ln P/P_truth| {score:.4f}", flush=True)

            result = trainer(
                model, split.train, split.validation, config, torch.Generator().manual_seed(seed), progress
            )
            card = {
                "data": f"{suite_dir}: train {split.names('train')}, validate {split.names('validation')}, "
                f"test {split.names('test')}; truth: {galaxy_stage} {galaxy_param or []}; grid {split.train[0].n}",
                "command": invocation(ctx),
                "selection": f"step {result.best_step}: validation mean |ln P/P_truth| (k <= k_Ny/4) "
                f"{result.best_score:.4f}",
            }
            if not main_process:  # every rank holds the same selected weights: rank 0 writes them
                barrier()
                return
            saved = save_paint_model(
                path,
                model,
                voxel=split.train[0].voxel,
                threshold=threshold,
                step=result.best_step,
                card=card,
                halo_assignment=halo_assignment,
                max_log_halo=max(float(b.inputs[1].max()) for b in split.train),
                split={"n_validation": n_validation, "n_test": n_test, "seed": seed}
                | {role: split.names(role) for role in ("train", "validation", "test")}
                | {"seeds": split.seeds()},
                particle_mass=split.train[0].particle_mass,
                cosmology=split.train[0].cosmology,
            )
            barrier()
        finally:
            shutdown()
    print(f"model: {saved} (step {result.best_step}, validation score {result.best_score:.4f})")


@app.command("evaluate")
def evaluate_command(
    suite_dir: Annotated[Path, typer.Argument(help="Suite folder (the same split as training).")],
    model: Annotated[Path | None, typer.Option(help="Successor model file (default: the shipped one).")] = None,
    per_voxel: Annotated[Path | None, typer.Option(help="A dm2gal per-voxel model file to compare.")] = None,
    galaxy_stage: Annotated[str, typer.Option(help="Registered stage painting the truth galaxies.")] = "galaxies.model",
    galaxy_param: Annotated[list[str] | None, typer.Option(help="Its params, key=value (repeatable).")] = None,
    hod_stage: Annotated[str, typer.Option(help="Registered HOD stage for the Zheng07 baseline ('' = none).")] = (
        "galaxies.hod"
    ),
    redraw: Annotated[
        bool,
        typer.Option(
            help="Add truth_redraw: the truth's galaxy stage rerun on the same haloes with another seed (the floor "
            "set by the truth's own randomness)."
        ),
    ] = True,
    n_validation: Annotated[int | None, typer.Option(help="As in training (default: the model's, else 1).")] = None,
    n_test: Annotated[int | None, typer.Option(help="As in training (default: the model's, else 1).")] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the split, the painted draws, the baselines' draws and the truth's redraw (default: the "
            "model's, else 0); the truth itself stays the box's (--truth-seed)."
        ),
    ] = None,
    truth_seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the truth's galaxy stage (+ the box index; default: the model's training seed, else 0: the "
            "truth the model was trained and selected on)."
        ),
    ] = None,
    output: Annotated[Path, typer.Option(help="Folder for evaluation.h5.")] = Path("runs/paint/evaluation"),
    figures: Annotated[Path | None, typer.Option(help="Folder for the P(k), B(k), PDF and slice figures.")] = None,
) -> None:
    """Score the successor, dm2gal, the baselines and a redraw of the truth on the test box(es): P(k),
    B(k1, k2, θ), PDF, total mass, occupancy precision / recall; writes evaluation.h5 and prints the summary of each
    box (and, with several test boxes, their mean)."""
    from cosmoseg.data import save_artifact
    from cosmoseg.paint.figures import write_paint_figures
    from cosmoseg.paint.models import (
        domain_notes,
        extrapolation_note,
        load_paint_model,
        recorded_split,
        seen_box_note,
        unchecked_notes,
    )
    from cosmoseg.paint.models import (
        truth_seed as model_truth_seed,
    )
    from cosmoseg.paint.report import evaluate_suite, mean_markdown, report_tables, summary_markdown
    from cosmoseg.paint.suite import load_split, redraw_truth, registry_truth

    with report_errors():
        models = [model, *([per_voxel] if per_voxel else [])]  # None: the shipped successor
        loaded = [load_paint_model(m) for m in models]
        metadata = [meta for _, meta in loaded]
        n_validation, n_test, seed = recorded_split(metadata[0], n_validation, n_test, seed)
        galaxy_params = parse_key_values(galaxy_param or [], "--galaxy-param")
        truth = registry_truth(galaxy_stage, galaxy_params, model_truth_seed(metadata[0], truth_seed))
        assignments = {meta.get("halo_assignment", "cic") for meta in metadata}
        if len(assignments) > 1:
            raise ValueError(f"--model and --per-voxel were trained on different halo fields ({sorted(assignments)})")
        split = load_split(suite_dir, truth, grid=0, n_validation=n_validation, n_test=n_test, seed=seed,
                           halo_assignment=assignments.pop())  # fmt: skip
        redraws = redraw_truth(galaxy_stage, galaxy_params, seed) if redraw else None
        notes = [
            (f"{box.name}, {meta['kind']}", f"warning: {note}")
            for box in split.test
            for meta in metadata
            for note in domain_notes(
                meta, particle_mass=box.particle_mass, cosmology=box.cosmology, where=f"paint evaluate ({box.name})"
            )
        ]
        notes += [
            (f"{box.name}, {meta['kind']}", note)
            for box in split.test[:1]
            for meta in metadata
            for note in unchecked_notes(meta, particle_mass=box.particle_mass)
        ]
        reports = evaluate_suite(split, successor=loaded[0], per_voxel=loaded[1] if per_voxel else None,
                                 hod_stage=hod_stage, seed=seed, redraw=redraws)  # fmt: skip
        notes += [(f"{box.name}, successor", extrapolation_note(box.inputs[1], metadata[0])) for box in split.test]
        test_seeds = split.seeds("test")
        notes += [
            (f"{name}, {meta['kind']}", seen_box_note(name, meta, test_seeds.get(name)))
            for meta in metadata
            for name in split.names("test")
        ]
        saved = save_artifact(output / "evaluation.h5", report_tables(reports))
        if figures is not None:
            for report in reports:  # several test boxes: one sub-folder each
                write_paint_figures(report, figures if len(reports) == 1 else figures / Path(report.box).stem)
    for report in reports:
        print(summary_markdown(report))
    if len(reports) > 1:
        print(mean_markdown(reports))
    for name, note in notes:
        if note is not None:
            print(f"{name}: {note}")
    print(f"evaluation: {saved}")
