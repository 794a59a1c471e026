"""The typer application. Each command parses arguments, calls the library and prints the result."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cosmoseg.errors import ArtifactError, CosmosegError
from cosmoseg.pipeline.commands import ExecutorOption, SchedulerOption, WorkersOption

if typing.TYPE_CHECKING:
    from cosmoseg.pipeline import RunResult
    from cosmoseg.plugins import Registry

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config value: run.seed=3, <stage id>.<param>=value, ..."),
]


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Also load the local plugins this pipeline names.")
]


def registry_for(config: Path | None) -> Registry:
    """The registry of the installed plugins, plus a pipeline's local plugins and block list when given."""
    from cosmoseg.pipeline import load_config
    from cosmoseg.plugins import build_registry, registry_for_config

    return build_registry() if config is None else registry_for_config(load_config(config))


def print_rows(rows: list[tuple[str, ...]]) -> None:
    """Plain aligned columns (never truncated, so the output can be grepped); the last column runs free."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())


def os_error(error: OSError) -> ArtifactError:
    """An operating-system error (a folder that is a file, no permission, a name too long) as one line naming the
    path: what the CLI prints instead of a traceback."""
    where = f"{error.filename}: " if error.filename else ""
    return ArtifactError(f"{where}{error.strerror or error}")


def fail(error: CosmosegError) -> typing.NoReturn:
    """Print a cosmoseg error, one problem per line, and exit with status 1."""
    err.print("[bold red]error:[/]", markup=True, highlight=False, end=" ")
    err.print(str(error), markup=False, highlight=False)
    raise typer.Exit(1)


def run(
    config: Annotated[Path, typer.Argument(help="Pipeline TOML file.")],
    device: Annotated[
        str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps (overrides \\[run] device).")
    ] = None,
    set_: SetOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip stages whose inputs and params are unchanged.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and print the plan; run nothing.")] = False,
    output: Annotated[Path | None, typer.Option(help="Output folder (overrides \\[run] output).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback when a stage fails.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Run even when a stage's memory estimate exceeds the machine's memory.")
    ] = False,
    executor: ExecutorOption = None,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run a pipeline: each stage's outputs go to <output>/<id>.h5, with a manifest.json."""
    from cosmoseg.pipeline import SilentReporter, load_config, plan_pipeline, resolve_device, run_pipeline
    from cosmoseg.pipeline.commands import executor_from_options
    from cosmoseg.pipeline.progress import RichReporter
    from cosmoseg.plugins import registry_for_config

    try:
        cfg = load_config(config, set_ or [])
        registry = registry_for_config(cfg)
        chosen = executor_from_options(executor, scheduler, workers, cfg.run.executor)
        if dry_run:
            plan = plan_pipeline(cfg, registry, force=force)
            target = resolve_device(device or cfg.run.device)
            where = (chosen or cfg.run.executor).describe()
            tasks = "" if where == "local" else f", tasks on {where}"
            out.print(f"{config}: {len(plan.stages)} stage(s) on {target}{tasks}, output {output or cfg.run.output}")
            for stage in plan.stages:
                wires = ", ".join(f"{k} <- {s}.{o}" for k, (s, o) in stage.inputs.items())
                out.print(f"  {stage.id} ({stage.uses}){': ' + wires if wires else ''}")
            return
        reporter = SilentReporter() if quiet else RichReporter(err)
        result = run_pipeline(
            cfg,
            registry=registry,
            device=device,
            resume=resume,
            reporter=reporter,
            output_dir=output,
            force=force,
            executor=chosen,
        )
    except CosmosegError as error:
        if debug:
            raise
        fail(error)
    except OSError as error:
        if debug:
            raise
        fail(os_error(error))
    ran = sum(r.status == "ran" for r in result.records)
    out.print(
        f"ran {ran} stage(s), skipped {len(result.records) - ran} on {result.device}; "
        f"outputs in {result.output_dir} (manifest: {result.manifest_path})"
    )
    if not quiet:
        print_outputs(result)


def print_outputs(result: RunResult) -> None:
    """What the run produced and where: every artifact with its objects, and the figures."""
    from cosmoseg.pipeline.folder import work_files

    rows = [("file", "stage", "holds")]
    for record in result.records:
        holds = "; ".join(f"{name}: {record.sizes.get(name, kind)}" for name, kind in record.outputs.items())
        rows.append((record.file, f"{record.id} ({record.uses})", holds))
        for figure in work_files(result.output_dir, record.id):
            rows.append((figure, "", "figure"))
    print_rows(rows)


def validate(
    config: Annotated[Path, typer.Argument(help="Pipeline TOML file.")],
    set_: SetOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Accept stages whose memory estimate exceeds the machine's memory.")
    ] = False,
) -> None:
    """Check a pipeline (stage names, params, inputs and their types, cycles, memory) without running it."""
    from cosmoseg.pipeline import load_config, plan_pipeline
    from cosmoseg.plugins import registry_for_config

    try:
        cfg = load_config(config, set_ or [])
        registry = registry_for_config(cfg)
        plan = plan_pipeline(cfg, registry, force=force)
    except CosmosegError as error:
        fail(error)
    out.print(f"{config}: valid, {len(plan.stages)} stage(s): {' -> '.join(s.id for s in plan.stages)}")


def stages_list(config: ConfigOption = None) -> None:
    """List every registered stage with the plugin it comes from."""
    try:
        registry = registry_for(config)
    except CosmosegError as error:
        fail(error)
    rows = [("stage", "origin", "inputs -> outputs", "summary")]
    for name, entry in registry.stages.items():
        cls = entry.obj
        flow = f"{', '.join(cls.inputs) or '-'} -> {', '.join(cls.outputs)}"
        rows.append((name, entry.plugin.label, flow, cls.summary()))
    print_rows(rows)


def stages_show(
    name: Annotated[str, typer.Argument(help="Stage name, e.g. sim.gaussian_field.")], config: ConfigOption = None
) -> None:
    """Show one stage: what it does, its inputs, outputs and params with defaults."""
    try:
        registry = registry_for(config)
        cls = registry.stage(name)
    except CosmosegError as error:
        fail(error)
    entry = registry.stages[name]
    out.print(f"[bold]{name}[/]  (from {entry.plugin.label}, version {cls.version})", markup=True)
    out.print((cls.__doc__ or "").strip())
    for kind in ("inputs", "outputs"):
        items = getattr(cls, kind)
        out.print(f"{kind}:" + ("" if items else " none"))
        for key, typ in items.items():
            optional = " (optional)" if key in cls.optional_inputs else ""
            out.print(f"  {key}: {typ.__name__}{optional}")
    from cosmoseg.pipeline.params import field_bounds, field_doc, type_text

    hints = typing.get_type_hints(cls.Params)
    fields = dataclasses.fields(cls.Params)
    out.print("params:" + ("" if fields else " none"))
    params_doc = (cls.Params.__doc__ or "").strip()
    if fields and params_doc and not params_doc.startswith(cls.Params.__name__ + "("):
        out.print(textwrap.fill(" ".join(params_doc.split()), width=100, initial_indent="  ", subsequent_indent="  "))
    for field in fields:
        if field.default is not dataclasses.MISSING:
            default = repr(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            default = repr(field.default_factory())
        else:
            default = "required"
        type_name = type_text(hints.get(field.name, Any))
        bounds, doc = field_bounds(field), field_doc(field)
        line = f"  {field.name}: {type_name} = {default}" + (f"  ({bounds})" if bounds else "")
        line += f": {doc}" if doc else ""
        out.print(textwrap.fill(line, width=100, subsequent_indent="      ", break_on_hyphens=False), markup=False)


def plugins(config: ConfigOption = None) -> None:
    """List the loaded plugins and where they come from."""
    try:
        registry = registry_for(config)
    except CosmosegError as error:
        fail(error)
    rows = [("plugin", "origin", "package", "stages", "readers")]
    for name, info in registry.plugins.items():
        stages = [s for s, e in registry.stages.items() if e.plugin.name == name]
        readers = [r for r, e in registry.readers.items() if e.plugin.name == name]
        package = f"{info.distribution} {info.version}".strip() or info.source
        rows.append((name, info.origin, package, ", ".join(stages) or "-", ", ".join(readers) or "-"))
    print_rows(rows)


def inspect(file: Annotated[Path, typer.Argument(help="An artifact file written by cosmoseg (.h5).")]) -> None:
    """Print a readable summary of an artifact file: every object, its sizes, units, ranges and box."""
    from cosmoseg.cli.describe import describe
    from cosmoseg.data import open_artifact, read_object
    from cosmoseg.pipeline.folder import artifact_status

    try:
        with open_artifact(file) as f:
            attrs = {k: f.attrs[k] for k in f.attrs}
            schema, version = attrs.get("schema_version"), attrs.get("cosmoseg_version")
            out.print(f"{file}: cosmoseg artifact, schema {schema}, written by cosmoseg {version}")
            for key in ("stage_id", "uses"):
                if key in attrs:
                    out.print(f"  {key}: {attrs[key]}")
            status = artifact_status(file)
            if status:
                out.print(f"  [bold red]{status}[/]", markup=True)
            for name in f:
                try:
                    obj = read_object(f[name])
                except ArtifactError as error:
                    raise ArtifactError([f"{file}: {p}" for p in error.problems]) from error
                lines = describe(obj)
                out.print(f"[bold]{name}[/]: " + lines[0], markup=True)
                for line in lines[1:]:
                    out.print(line, markup=False)
    except CosmosegError as error:
        fail(error)
    except OSError as error:
        fail(os_error(error))


def build_app(*, with_plugins: bool = True) -> typer.Typer:
    """A fresh app; with the commands that plugins add through ``cosmoseg_register_commands``."""
    app = typer.Typer(
        name="cosmoseg",
        help="From cosmological initial conditions to galaxies: run, check and inspect cosmoseg pipelines.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    from cosmoseg.cli.mock import mock

    for command in (run, validate, plugins, inspect, mock):
        app.command()(command)
    stages_app = typer.Typer(help="The stages the installed plugins provide.", no_args_is_help=True)
    stages_app.command("list")(stages_list)
    stages_app.command("show")(stages_show)
    app.add_typer(stages_app, name="stages")
    if with_plugins:
        from cosmoseg.plugins import build_registry

        try:
            registry = build_registry()
        except CosmosegError as error:
            err.print(f"warning: plugins could not be loaded, plugin commands are missing: {error}", markup=False)
            return app
        try:
            registry.manager.hook.cosmoseg_register_commands(app=app)
        except (Exception, SystemExit) as error:  # one plugin's broken commands must not take the CLI down
            err.print(f"warning: a plugin failed to add its commands ({error!r}); they are missing", markup=False)
    return app


def main() -> None:
    """Entry point of the ``cosmoseg`` console script."""
    build_app()(prog_name="cosmoseg")


if __name__ == "__main__":
    sys.exit(main())
