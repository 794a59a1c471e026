"""The kit of the science command groups: errors one problem per line, the parsed invocation for model cards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.testing import CliRunner

from cosmoseg.errors import ConfigError
from cosmoseg.pipeline.commands import SeedOption, error_lines, invocation, report_errors

app = typer.Typer(name="cosmoseg")
group = typer.Typer()


@group.command("train")
def train(
    ctx: typer.Context,
    suite: Path,
    method: str = "flow",
    seed: SeedOption = 0,
    reverse: Annotated[bool, typer.Option("--reverse")] = False,
    hyper: Annotated[list[str] | None, typer.Option()] = None,
    fail: bool = False,
) -> None:
    print(invocation(ctx))
    with report_errors():
        if fail:
            raise ConfigError(["the first problem", "the second problem"], context="suites/x")


app.add_typer(group, name="galaxies")


@app.callback()
def main() -> None:
    """A stand-in for the cosmoseg app."""


def test_the_invocation_is_the_parsed_command_with_every_default() -> None:
    result = CliRunner().invoke(app, ["galaxies", "train", "my suite", "--hyper", "epochs=3", "--hyper", "lr=0.1"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "cosmoseg galaxies train 'my suite' --method flow --seed 0 --hyper epochs=3 --hyper lr=0.1 --no-fail"
    )


def test_errors_are_one_problem_per_line_with_status_1() -> None:
    result = CliRunner().invoke(app, ["galaxies", "train", "s", "--fail"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    start = lines.index("error: suites/x:")
    assert lines[start : start + 3] == ["error: suites/x:", "- the first problem", "- the second problem"]


def test_error_lines_of_os_errors_name_the_path() -> None:
    assert error_lines(FileNotFoundError(2, "No such file or directory", "/x/y")) == [
        "error: /x/y: No such file or directory"
    ]
    assert error_lines(ValueError("bad value")) == ["error: bad value"]
