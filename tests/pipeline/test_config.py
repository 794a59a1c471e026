"""Pipeline checks before anything runs: one clear line per problem, nothing on disk touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosmoseg import run_pipeline
from cosmoseg.errors import ConfigError
from cosmoseg.pipeline import load_config, plan_pipeline
from cosmoseg.plugins import build_registry

TOY = Path(__file__).resolve().parents[1] / "fixtures" / "toy_plugin.py"
GOOD = """
[[stage]]
id = "field"
uses = "sim.gaussian_field"
params = { n = 8, box = 50.0, cosmology = { power_backend = "eisenstein-hu" } }

[[stage]]
id = "power"
uses = "measure.power_spectrum"
inputs = { field = "field.field" }
"""


def problems_of(path: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    config = load_config(path, overrides)
    registry = build_registry([str(TOY)], autoload=False)
    with pytest.raises(ConfigError) as info:
        plan_pipeline(config, registry)
    assert str(path) in str(info.value)
    return info.value.problems


def test_a_good_pipeline_plans_in_order(write_config) -> None:
    config = load_config(write_config(GOOD))
    plan = plan_pipeline(config, build_registry(autoload=False))
    assert [s.id for s in plan.stages] == ["field", "power"]
    assert plan.stages[1].inputs == {"field": ("field", "field")}
    assert plan.stages[0].params.n == 8


def test_typo_in_a_stage_name_suggests_the_right_one(write_config) -> None:
    (problem,) = problems_of(write_config(GOOD.replace('"sim.gaussian_field"', '"sim.gausian_field"')))
    assert problem == "stage 'field': uses unknown stage 'sim.gausian_field' (did you mean 'sim.gaussian_field'?)"


def test_missing_input(write_config) -> None:
    (problem,) = problems_of(write_config(GOOD.replace('inputs = { field = "field.field" }', "")))
    assert problem.startswith("stage 'power': missing input 'field' (Field)")


def test_wrongly_typed_input(write_config) -> None:
    text = GOOD + '\n[[stage]]\nid = "count"\nuses = "toy.count"\ninputs = { halos = "power.spectrum" }\n'
    (problem,) = problems_of(write_config(text))
    assert problem == "stage 'count': input 'halos' expects a HaloCatalog, but 'power.spectrum' is a Table"


def test_unknown_and_badly_typed_params_are_all_reported(write_config) -> None:
    text = GOOD.replace("n = 8, box = 50.0", 'n = 8, box = "big", smoothing = 2')
    problems = problems_of(write_config(text))
    assert "stage 'field' (sim.gaussian_field): unknown param 'smoothing'" in problems[0]
    assert "param 'box' must be a number, got 'big'" in problems[1]
    assert len(problems) == 2


def test_params_own_checks(write_config) -> None:
    (problem,) = problems_of(write_config(GOOD.replace("n = 8", "n = 7")))
    assert "param 'n' must be an even integer >= 2, got 7" in problem


def test_unknown_output_stage_and_undeclared_input(write_config) -> None:
    text = GOOD.replace('inputs = { field = "field.field" }', 'inputs = { field = "feild.field", extra = "field.x" }')
    problems = problems_of(write_config(text))
    assert any("measure.power_spectrum has no input 'extra'" in p for p in problems)
    assert any("refers to unknown stage id 'feild' (did you mean 'field'?)" in p for p in problems)
    text = GOOD.replace('"field.field"', '"field.density"')
    (problem,) = problems_of(write_config(text))
    assert "'field' (sim.gaussian_field) has no output 'density' (its outputs: field)" in problem


def test_cycles_are_found(write_config) -> None:
    text = """
[[stage]]
id = "a"
uses = "toy.scale"
inputs = { field = "b.field" }

[[stage]]
id = "b"
uses = "toy.scale"
inputs = { field = "a.field" }
"""
    (problem,) = problems_of(write_config(text))
    assert problem.startswith("the stages form a cycle: ")
    assert "a -> b" in problem or "b -> a" in problem


def test_shape_errors_of_the_file(write_config) -> None:
    text = '[run]\nseed = -1\ncolour = "red"\n[[stage]]\nid = "x y"\nuses = "sim.gaussian_field"\n'
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text))
    problems = info.value.problems
    assert "[run]: unknown key 'colour'" in problems[0]
    assert "[run]: seed must be an integer >= 0, got -1" in problems[1]
    assert "id must be a name of letters" in problems[2]


def test_invalid_toml_names_the_file(write_config) -> None:
    path = write_config("[[stage]\n")
    with pytest.raises(ConfigError, match=rf"{path.name}: not valid TOML"):
        load_config(path)


def test_overrides(write_config) -> None:
    path = write_config(GOOD)
    config = load_config(path, ["run.seed=9", "field.n=16", "field.params.box=80.5", "power.inputs.field=field.field"])
    assert config.run.seed == 9
    assert config.stage("field").params["n"] == 16 and config.stage("field").params["box"] == 80.5
    with pytest.raises(ConfigError, match="'nope' is neither 'run' nor a stage id"):
        load_config(path, ["nope.n=3"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(path, ["seed"])


def test_a_bad_pipeline_leaves_existing_outputs_untouched(write_config, tmp_path: Path) -> None:
    good = write_config(GOOD, "good.toml")
    run_pipeline(load_config(good))
    out = tmp_path / "out"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = write_config(GOOD.replace("n = 8,", "n = 8, typo = 1,"), "bad.toml")
    with pytest.raises(ConfigError):
        run_pipeline(load_config(bad))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
