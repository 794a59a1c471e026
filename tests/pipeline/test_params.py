"""The stage idiom's core: Stage[P] sets Params, param() declares bounds and docs, parse_params enforces them."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from cosmoseg import Stage, param
from cosmoseg.data import Field
from cosmoseg.pipeline import NoParams
from cosmoseg.pipeline.params import field_bounds, field_doc, parse_params, type_text
from cosmoseg.pipeline.stage import P


@dataclasses.dataclass(frozen=True)
class GridParams:
    n: int = param(64, ge=2, doc="cells per side")
    radius: float = param(1.0, gt=0, le=10, doc="Mpc/h")
    edges: list[float] = param([0.1, 0.2], ge=0, lt=1)  # noqa: RUF009 (param copies it per instance)
    kind: Literal["tophat", "gaussian"] = "tophat"
    flag: bool = param(False, ge=1)  # a bound never applies to a bool

    def problems(self) -> list[str]:
        return [] if self.n % 2 == 0 else [f"n must be even, got {self.n}"]


def test_stage_with_a_type_argument_sets_its_params() -> None:
    class GridStage(Stage[GridParams]):
        name = "demo.grid"
        outputs = {"field": Field}

    class Bare(Stage):
        name = "demo.bare"

    class Child(GridStage):  # inherits the parent's params
        name = "demo.child"

    assert GridStage.Params is GridParams and Child.Params is GridParams
    assert Bare.Params is NoParams


def test_a_generic_base_stage_passes_its_type_argument_on() -> None:
    class ReaderStage(Stage[P]):  # a family of stages sharing code, each with its own params
        example_file = ""

    class GridReader(ReaderStage[GridParams]):
        name = "demo.grid_reader"

    assert GridReader.Params is GridParams
    assert ReaderStage.Params is NoParams  # the unbound type variable sets nothing


def test_bounds_and_docs_are_declared_once() -> None:
    fields = {f.name: f for f in dataclasses.fields(GridParams)}
    assert field_bounds(fields["n"]) == ">= 2" and field_doc(fields["n"]) == "cells per side"
    assert field_bounds(fields["radius"]) == "> 0, <= 10"
    assert field_bounds(fields["kind"]) == "" and field_doc(fields["kind"]) == ""
    a, b = GridParams(), GridParams()
    assert a.edges == [0.1, 0.2] and a.edges is not b.edges  # a mutable default is copied for each instance


def test_values_in_bounds_parse() -> None:
    params, problems = parse_params(GridParams, {"n": 2, "radius": 10, "edges": [0.0, 0.99], "flag": True}, "s")
    assert problems == [] and params == GridParams(n=2, radius=10.0, edges=[0.0, 0.99], flag=True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"n": 0}, "s: param 'n' must be >= 2, got 0"),
        ({"radius": 0.0}, "s: param 'radius' must be > 0, got 0.0"),
        ({"radius": 10.5}, "s: param 'radius' must be <= 10, got 10.5"),
        ({"edges": [0.5, 1.0]}, "s: param 'edges' must be < 1, got [0.5, 1.0] (an item is 1.0)"),
        ({"kind": "box"}, "s: param 'kind' must be one of"),
    ],
)
def test_a_value_outside_its_bounds_is_named(raw: dict, expected: str) -> None:
    params, problems = parse_params(GridParams, raw, "s")
    assert params is None and len(problems) == 1 and problems[0].startswith(expected), problems


def test_a_bound_and_a_rule_across_fields_are_reported_together() -> None:
    params, problems = parse_params(GridParams, {"n": 3, "radius": -1.0}, "s")
    assert params is None
    assert problems == ["s: param 'radius' must be > 0, got -1.0", "s: n must be even, got 3"]


def test_a_check_that_cannot_run_out_of_bounds_waits_for_the_bounds() -> None:
    @dataclasses.dataclass(frozen=True)
    class Cells:
        n: int = param(8, ge=1)

        def problems(self) -> list[str]:
            return [] if 64 % self.n == 0 else [f"n must divide 64, got {self.n}"]  # ZeroDivisionError for n = 0

    assert parse_params(Cells, {"n": 0}, "s") == (None, ["s: param 'n' must be >= 1, got 0"])
    assert parse_params(Cells, {"n": 5}, "s") == (None, ["s: n must divide 64, got 5"])
    with pytest.raises(ZeroDivisionError):  # a bug in a check with every value in bounds is not hidden
        Cells.problems(Cells(n=0))


def test_a_wrong_type_is_reported_before_the_rules() -> None:
    params, problems = parse_params(GridParams, {"n": "six", "radius": -1.0, "colour": 1}, "s")
    assert params is None
    assert problems[0].startswith("s: unknown param 'colour'")
    assert problems[1] == "s: param 'n' must be an integer, got 'six'"
    assert problems[2] == "s: param 'radius' must be > 0, got -1.0"
    assert len(problems) == 3  # problems() does not run on a value of the wrong type


@pytest.mark.parametrize(
    ("tp", "text"),
    [
        (int, "int"),
        (list[float], "list[float]"),
        (tuple[float, ...], "tuple[float, ...]"),
        (float | None, "float | None"),
        (Literal["ngp", "cic"], "'ngp' | 'cic'"),
    ],
)
def test_types_print_as_a_user_reads_them(tp: object, text: str) -> None:
    assert type_text(tp) == text
