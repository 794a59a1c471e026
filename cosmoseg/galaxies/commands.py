"""The ``cosmoseg galaxies`` commands (a thin layer over training.py, suite_galaxies.py, hod_chunks.py and
centrals_chunks.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cosmoseg.galaxies.features import DEFAULT_GALAXY_PROPERTIES, DEFAULT_HALO_PROPERTIES
from cosmoseg.galaxies.population import DEFAULT_POPULATION_CONDITIONS
from cosmoseg.nn.distributed import is_main_process
from cosmoseg.pipeline.commands import (
    BoxesOption,
    ExecutorOption,
    NValidationOption,
    SchedulerOption,
    SeedOption,
    WorkersOption,
    executor_from_options,
    invocation,
    report_errors,
)
from cosmoseg.pipeline.params import parse_key_values

app = typer.Typer(help="Halo -> galaxy samplers (Abramo et al.): train and evaluate on a suite.", no_args_is_help=True)

DEFAULT_CONDITIONS = ",".join(DEFAULT_HALO_PROPERTIES)
DEFAULT_TARGETS = ",".join(DEFAULT_GALAXY_PROPERTIES)
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
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Argument(
            help="Suite folder of `cosmoseg simulate` (box_*.h5 with halos; the truth: galaxies.model), or a hydro "
            "run's group catalog (TNG / AREPO / Gadget-4 fof_subhalo_tab: file, first chunk, stem or folder)."
        ),
    ],
    method: Annotated[str, typer.Option(help="flow, hival, gauss or regression.")] = "flow",
    satellites: Annotated[
        bool,
        typer.Option(
            "--satellites",
            help="Train a population model (centrals and satellites: occupation, profile, velocities and both "
            "samplers) for galaxies.population and `cosmoseg mock --galaxies`.",
        ),
    ] = False,
    conditions: Annotated[
        str | None,
        typer.Option(
            help=f"Halo properties, comma-separated (default {DEFAULT_CONDITIONS} for a suite's centrals, "
            f"{','.join(DEFAULT_POPULATION_CONDITIONS)} for a catalog or --satellites)."
        ),
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
    variant: Annotated[str, typer.Option(help="Galaxy-model variant that paints a suite's truth.")] = "fiducial",
    n_validation: NValidationOption = 2,
    validation_fraction: Annotated[
        float, typer.Option(help="Share of a catalog's haloes (with their galaxies) held out for the metrics.")
    ] = 0.2,
    min_log_mstar: Annotated[
        float, typer.Option(help="A catalog's galaxies: subhaloes with log10 M* / (Msun/h) at least this.")
    ] = 9.0,
    seed: SeedOption = 0,
    output: Annotated[
        Path | None,
        typer.Option(help="Model file (default runs/galaxies/<method>.pt, population.pt with --satellites)."),
    ] = None,
) -> None:
    """Fit a sampler (or, with --satellites, a population model) on a suite or a hydro run's catalog, score it on
    held-out boxes or haloes, and save it with a model card (its command: this one, every option spelled out).

    Under `torchrun --nproc-per-node N -m cosmoseg.cli galaxies train ...` the network samplers (flow, gauss,
    regression, the HiVAl classifier) fit data-parallel on the CPU (gloo): each process takes its share of every
    mini-batch (the same fit as one process) and rank 0 writes the model and prints."""
    from cosmoseg.galaxies.training import is_suite
    from cosmoseg.nn.distributed import init_from_env, shutdown

    name = "population" if satellites else f"{method}{'-reverse' if reverse else ''}"
    path = output or Path("runs") / "galaxies" / f"{name}.pt"
    main_process = True
    with report_errors():
        init_from_env("cpu")  # under torchrun: joins the process group (gloo: the samplers fit on the CPU)
        main_process = is_main_process()
        if reverse and (satellites or not is_suite(source)):
            raise ValueError("--reverse trains on a suite's centrals only (not with --satellites or a catalog)")
        options = _TrainOptions(
            method=method,
            hyper=parse_key_values(hyper or [], "--hyper"),
            variant=variant,
            n_validation=n_validation,
            validation_fraction=validation_fraction,
            min_log_mstar=min_log_mstar,
            seed=seed,
        )
        try:
            if satellites:
                saved = _train_population(source, options, conditions, targets, invocation(ctx), path)
            else:
                saved = _train_sampler(source, options, conditions, targets, reverse, invocation(ctx), path)
        finally:
            shutdown()
    if not main_process:
        return
    print(f"{'population model' if satellites else 'sampler'}: {saved}")


@dataclasses.dataclass(frozen=True)
class _TrainOptions:
    method: str
    hyper: dict[str, Any]
    variant: str
    n_validation: int
    validation_fraction: float
    min_log_mstar: float
    seed: int


def _source_pairs(source: Path, options: _TrainOptions, *, satellites: bool) -> tuple[Any, Any, str]:
    """(training (halos, galaxies), validation (halos, galaxies) or None, data description) of a suite or catalog."""
    from cosmoseg.galaxies.population import concatenate_boxes, split_by_halo
    from cosmoseg.galaxies.training import box_pairs, catalog_pairs, is_suite, split_boxes
    from cosmoseg.sim.suites import find_boxes

    if is_suite(source):
        train_paths, val_paths = split_boxes(find_boxes(source), options.n_validation, options.seed)
        train = concatenate_boxes(
            [box_pairs(p, options.variant, options.seed, satellites=satellites) for p in train_paths]
        )
        val = (
            concatenate_boxes([box_pairs(p, options.variant, options.seed, satellites=satellites) for p in val_paths])
            if val_paths
            else None
        )
        what = "centrals and satellites" if satellites else "centrals"
        data = (
            f"{source}: train {[p.name for p in train_paths]}, validate {[p.name for p in val_paths]}; "
            f"truth: galaxies.model variant {options.variant!r}, {what}"
        )
        return train, val, data
    halos, galaxies = catalog_pairs(source, min_log_mstar=options.min_log_mstar)
    train, val = split_by_halo(halos, galaxies, options.validation_fraction, options.seed)
    data = (
        f"{source}: hydro run's FoF groups ({len(halos)}) and galaxies with log10 M* >= {options.min_log_mstar} "
        f"({len(galaxies)}, {int(galaxies['is_central'].sum())} centrals); {options.validation_fraction:g} of the "
        f"haloes held out (seed {options.seed})"
    )
    return train, (val if len(val[0]) else None), data


def _train_population(
    source: Path,
    options: _TrainOptions,
    conditions: str | None,
    targets: str | None,
    command: str,
    path: Path,
) -> Path:
    from cosmoseg.galaxies.population import evaluate_population, fit_population

    cond = _names(conditions or ",".join(DEFAULT_POPULATION_CONDITIONS))
    targ = _names(targets or DEFAULT_TARGETS)
    train, val, data = _source_pairs(source, options, satellites=True)
    model = fit_population(
        *train, conditions=cond, targets=targ, method=options.method, hyper=options.hyper, seed=options.seed
    )
    card: dict[str, Any] = {"data": data, "command": command}
    if val is not None:
        metrics = evaluate_population(model, *val, seed=options.seed)
        card["metrics"] = metrics
        if is_main_process():
            print("| metric | value |\n|---|---|")
            for key, value in metrics.items():
                print(f"| {key} | {value:.4g} |")
    return _save_on_rank_zero(lambda: model.save(path, card=card), path)


def _train_sampler(
    source: Path,
    options: _TrainOptions,
    conditions: str | None,
    targets: str | None,
    reverse: bool,
    command: str,
    path: Path,
) -> Path:
    from cosmoseg.galaxies.features import central_rows
    from cosmoseg.galaxies.training import evaluate_samplers, is_suite, suite_rows, train_rows

    suite = is_suite(source)
    reversed_defaults = (DEFAULT_TARGETS, DEFAULT_REVERSE_TARGETS)
    default_cond = DEFAULT_CONDITIONS if suite else ",".join(DEFAULT_POPULATION_CONDITIONS)
    default_cond, default_targ = reversed_defaults if reverse else (default_cond, DEFAULT_TARGETS)
    cond, targ = _names(conditions or default_cond), _names(targets or default_targ)
    if suite:
        from cosmoseg.galaxies.training import split_boxes, split_card
        from cosmoseg.sim.suites import find_boxes

        train_paths, val_paths = split_boxes(find_boxes(source), options.n_validation, options.seed)
        split = split_card(source, train_paths, val_paths)
        x, y = suite_rows(train_paths, cond, targ, options.variant, options.seed, reverse=reverse)
        data = (
            f"{source}: train {[p.name for p in train_paths]}, validate {[p.name for p in val_paths]}; "
            f"truth: galaxies.model variant {options.variant!r}, centrals"
            + ("; reverse: p(halo | galaxy)" if reverse else "")
        )
        val_rows = (
            suite_rows(val_paths, cond, targ, options.variant, options.seed, reverse=reverse) if val_paths else None
        )
    else:
        split = {}
        train, val, data = _source_pairs(source, options, satellites=False)

        roles = (f"halo catalog of {source}", f"galaxy catalog of {source}")
        x, y = central_rows(*train, cond, targ, roles=roles)
        val_rows = central_rows(*val, cond, targ, roles=roles) if val is not None else None
    sampler = train_rows(options.method, x, y, cond, targ, hyper=options.hyper, seed=options.seed)
    card: dict[str, Any] = {"data": data, "command": command, **split}
    if val_rows is not None:
        table = evaluate_samplers({options.method: sampler}, *val_rows, seed=options.seed)
        card["metrics"] = {k: float(v[0]) for k, v in table.columns.items() if k != "method"}
        if is_main_process():
            print(_markdown(table, [options.method], targ))
    return _save_on_rank_zero(lambda: sampler.save(path, card=card), path)


def _save_on_rank_zero(save: Callable[[], Path], path: Path) -> Path:
    """``save()`` on rank 0 (every rank of a torchrun fit holds the same model) while the others wait; ``path``."""
    from cosmoseg.nn.distributed import barrier

    written = save() if is_main_process() else path
    barrier()
    return written


@app.command("evaluate")
def evaluate_command(
    suite_dir: Annotated[Path, typer.Argument(help="Suite folder of `cosmoseg simulate`.")],
    model: Annotated[list[Path], typer.Option("--model", help="A fitted sampler file (repeatable).")],
    variant: Annotated[str, typer.Option(help="Galaxy-model variant that paints the truth.")] = "fiducial",
    n_validation: NValidationOption = 2,
    seed: SeedOption = 0,
    n_draws: Annotated[int, typer.Option(help="Draws per halo for the interval coverage.")] = 100,
    clustering_draws: Annotated[
        int,
        typer.Option(
            help="Draws per halo that the clustering is averaged over (Δb shown as mean ± sd over the draws)."
        ),
    ] = 8,
    truth_redrawn: Annotated[
        bool,
        typer.Option(
            "--truth-redrawn/--no-truth-redrawn",
            help="Add the floor: the galaxy model rerun on the same held-out haloes with other seeds, scored like a "
            "sampler (not with --reverse).",
        ),
    ] = True,
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

    The held-out boxes are those of training's split (the same --n-validation and --seed); --n-validation equal to
    the number of boxes scores every box (a new suite). A scored box that a model card lists as a training box is
    reported. A row "truth redrawn" (the galaxy model painted again on the same haloes) gives the floor of every
    metric. With the clustering, evaluation.h5 also holds ``clustering`` (per method and sub-population: number
    density, bias against the linear field and its spread over draws, mean |P/P_truth - 1|) and ``clustering_curves``
    (P(k) ratio per k bin).
    """
    from cosmoseg.data import save_artifact
    from cosmoseg.galaxies.clustering import comparison_markdown, has_linear_field, run_clustering
    from cosmoseg.galaxies.figures import write_figures
    from cosmoseg.galaxies.training import (
        TRUTH_REDRAWN,
        TruthRedraw,
        evaluate_samplers,
        load_samplers,
        split_boxes,
        suite_rows,
        training_box_notes,
    )
    from cosmoseg.sim.suites import find_boxes

    notes: list[str] = []
    with report_errors():
        if clustering_draws < 1:
            raise ValueError(f"--clustering-draws must be >= 1, got {clustering_draws}")
        samplers: dict[str, Any] = dict(load_samplers(model))
        first = next(iter(samplers.values()))
        train_paths, val_paths = split_boxes(find_boxes(suite_dir), n_validation, seed, allow_all=True)
        if not val_paths:
            raise ValueError("--n-validation must be >= 1 to evaluate")
        for name, sampler in samplers.items():
            if sampler.condition_names != first.condition_names:
                raise ValueError(f"{name} is conditioned on {sampler.condition_names}, not {first.condition_names}")
        notes.append(f"scored boxes: {[p.name for p in val_paths]} of {suite_dir} (seed {seed})")
        notes += training_box_notes(samplers, suite_dir, val_paths)
        x, y = suite_rows(val_paths, first.condition_names, first.target_names, variant, seed, reverse=reverse)
        if truth_redrawn and not reverse:
            floor = TruthRedraw(val_paths, first.condition_names, first.target_names, variant=variant, seed=seed)
            samplers = {TRUTH_REDRAWN: floor} | samplers
        table = evaluate_samplers(samplers, x, y, n_draws=n_draws, seed=seed)
        objects = {"scores": table}
        report = ""
        if clustering and reverse:
            raise ValueError("--clustering compares galaxy samples: it does not apply to --reverse samplers")
        if clustering is None:
            clustering = not reverse and has_linear_field(val_paths[0])
        if clustering:
            if hod and not train_paths:
                notes.append("no box is left to fit the HOD on (every box is scored): the clustering has no HOD row")
            result = run_clustering(
                suite_dir,
                samplers,
                n_validation=n_validation,
                variant=variant,
                seed=seed,
                hod=hod,
                n_draws=clustering_draws,
            )
            objects |= {"clustering": result.summary, "clustering_curves": result.curves}
            report = comparison_markdown(result.summary, table, first.target_names)
            if figures is not None:
                write_figures(result, figures)
        elif figures is not None:
            raise ValueError("--figures needs the clustering (boxes with 'fields', and not --no-clustering)")
        saved = save_artifact(output / "evaluation.h5", objects)
    for note in notes:
        print(note)
    print(_markdown(table, list(samplers), first.target_names))
    if report:
        print(report)
    print(f"evaluation: {saved}")


@app.command("paint-suite")
def paint_suite_command(
    suite_dir: Annotated[Path, typer.Argument(help="Suite folder of `cosmoseg simulate` (box_*.h5 with halos).")],
    output: Annotated[Path, typer.Option(help="Folder for galaxies_<i>.h5 (default: <suite>/galaxies-<variant>).")]
    | None = None,
    variant: Annotated[str, typer.Option(help="Galaxy-model variant: fiducial or moster13.")] = "fiducial",
    nuisance: Annotated[
        bool,
        typer.Option(
            "--nuisance/--no-nuisance",
            help="Draw the galaxy model's nuisance parameters per box (a Latin hypercube of offsets from the variant: "
            "scatter_dex ±0.1, sat_log_m1 ±0.3, sat_alpha ±0.2, quench_log_mass ±0.3).",
        ),
    ] = True,
    min_log_mstar: Annotated[
        float, typer.Option(help="Keep galaxies with log10 M* / (Msun/h) at least this (above the suite's resolution).")
    ] = 9.0,
    boxes: BoxesOption = None,
    halos: Annotated[
        Path | None,
        typer.Option(
            help="Folder of halos_<i>.h5 to paint instead of the boxes' N-body haloes (`cosmoseg protohalo catalogs`: "
            "the haloes of the initial conditions alone); default output <suite>/galaxies-<variant>-<folder name>."
        ),
    ] = None,
    halo_columns: Annotated[
        str,
        typer.Option(
            help="Paint from these halo columns only, comma-separated (e.g. pos,vel,mass: what haloes of the initial "
            "conditions have); the others take the model's fallbacks. Empty = all."
        ),
    ] = "",
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep galaxy files already painted with these settings.")
    ] = False,
    seed: SeedOption = 0,
) -> None:
    """Paint centrals and satellites onto every box of a suite with the galaxy model, the model's nuisance parameters
    drawn per box; the catalogs that `cosmoseg infer train` learns cosmology from."""
    from cosmoseg.galaxies.suite_galaxies import NUISANCE_OFFSETS, SuiteGalaxySettings, paint_suite
    from cosmoseg.sim.commands import parse_indices

    with report_errors():
        settings = SuiteGalaxySettings(
            variant=variant,
            nuisance=dict(NUISANCE_OFFSETS) if nuisance else {},
            min_log_mstar=min_log_mstar,
            seed=seed,
            halo_columns=tuple(c for c in halo_columns.split(",") if c),
        )
        folder = output or suite_dir / (f"galaxies-{variant}" + (f"-{halos.name}" if halos else ""))
        paths = paint_suite(
            suite_dir,
            folder,
            settings,
            boxes=parse_indices(boxes) if boxes else None,
            halos_dir=halos,
            resume=resume,
        )
    typer.echo(f"{len(paths)} galaxy file(s) in {folder}")


@app.command("hod")
def hod_command(
    halos: Annotated[Path, typer.Argument(help="An artifact file holding a HaloCatalog (pos, mass; vel).")],
    output: Annotated[Path, typer.Option(help="Folder for the galaxy catalog in chunks, galaxies_<i>.h5.")],
    chunk_rows: Annotated[int, typer.Option(help="Haloes per chunk (one task, one file each).")] = 1_000_000,
    name: Annotated[str, typer.Option("--object", help="Name of the HaloCatalog in the file.")] = "halos",
    hod: Annotated[
        list[str] | None,
        typer.Option(help="An HOD parameter, KEY=VALUE (log_m_min=12.5, alpha=1.0, ...); Zheng et al. 2007 otherwise."),
    ] = None,
    secondary: Annotated[str, typer.Option(help="Halo column ranked for assembly bias (a_cen, a_sat).")] = "",
    velocities: Annotated[
        bool, typer.Option("--velocities/--no-velocities", help="Give galaxies velocities (the haloes need vel).")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed of the draws (the same galaxies whatever the chunks).")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Keep chunk files written with these inputs.")] = False,
    executor: ExecutorOption = None,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No log lines.")] = False,
) -> None:
    """A Zheng07 HOD mock of a large halo catalog, in chunks: one task per chunk of haloes (on a Dask cluster with
    --executor dask), each writing its galaxies to OUTPUT/galaxies_<i>.h5; the galaxies are those of one process."""
    from cosmoseg.galaxies.hod import HODParams
    from cosmoseg.galaxies.hod_chunks import populate_file
    from cosmoseg.pipeline.executor import ExecutorConfig, open_executor

    with report_errors():
        chosen = executor_from_options(executor, scheduler, workers) or ExecutorConfig()
        params = HODParams(**parse_key_values(hod or [], "--hod"))
        with open_executor(chosen) as tasks:
            paths = populate_file(
                halos,
                output,
                params,
                seed,
                chunk_rows=chunk_rows,
                name=name,
                velocities=velocities,
                secondary=secondary or None,
                resume=resume,
                map_tasks=tasks.map,
                log=(lambda message: None) if quiet else (lambda message: typer.echo(message, err=True)),
            )
    typer.echo(f"{len(paths)} chunk file(s) in {output} (join them with cosmoseg.galaxies.hod_chunks.load_chunks)")


@app.command("sample")
def sample_command(
    halos: Annotated[Path, typer.Argument(help="An artifact file holding a HaloCatalog (pos, mass, conditions; vel).")],
    output: Annotated[Path, typer.Option(help="Folder for the galaxy catalog in chunks, galaxies_<i>.h5.")],
    model: Annotated[
        Path | None, typer.Option(help="A fitted sampler file (galaxies train); the shipped one of --method otherwise.")
    ] = None,
    method: Annotated[str, typer.Option(help="Sampler whose shipped model is used without --model.")] = "flow",
    chunk_rows: Annotated[
        int, typer.Option(help="Haloes per chunk (one task, one file each): a multiple of the draw block, 65536.")
    ] = 16 * 65536,
    name: Annotated[str, typer.Option("--object", help="Name of the HaloCatalog in the file.")] = "halos",
    min_mass: Annotated[float, typer.Option(help="Haloes lighter than this (Msun/h) get no galaxy.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the draws (the same galaxies whatever the chunks).")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Keep chunk files written with these inputs.")] = False,
    executor: ExecutorOption = None,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No log lines.")] = False,
) -> None:
    """A central galaxy for every halo of a large halo catalog from a joint sampler, in chunks: one task per chunk
    of haloes (on a Dask cluster with --executor dask), each writing its galaxies to OUTPUT/galaxies_<i>.h5; the
    galaxies are those of one process with the same seed (cosmoseg.galaxies.centrals.sample_centrals)."""
    from cosmoseg.galaxies.centrals_chunks import sample_file
    from cosmoseg.galaxies.sampler_stage import DEFAULT_MODELS_DIR, model_provenance
    from cosmoseg.galaxies.samplers.base import load_sampler
    from cosmoseg.pipeline.executor import ExecutorConfig, open_executor

    with report_errors():
        chosen = executor_from_options(executor, scheduler, workers) or ExecutorConfig()
        path, origin = (model, "file") if model is not None else (DEFAULT_MODELS_DIR / f"{method}.pt", "shipped")
        sampler = load_sampler(path)
        with open_executor(chosen) as tasks:
            paths = sample_file(
                halos,
                output,
                sampler,
                seed,
                chunk_rows=chunk_rows,
                name=name,
                min_mass=min_mass,
                provenance=model_provenance(path, origin),
                resume=resume,
                map_tasks=tasks.map,
                log=(lambda message: None) if quiet else (lambda message: typer.echo(message, err=True)),
            )
    typer.echo(f"{len(paths)} chunk file(s) in {output} (join them with cosmoseg.galaxies.chunks.load_chunks)")
