"""Files the galaxy stages read and write: ``save_model`` stays inside the run folder and never overwrites another's
file; the output's meta names the model file actually used and its sha256."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest
import torch

from cosmoseg import run_pipeline
from cosmoseg.errors import CosmosegError, ValidationError
from cosmoseg.galaxies._examples import toy_halos
from cosmoseg.galaxies.model import paint_galaxies
from cosmoseg.galaxies.sampler_stage import DEFAULT_MODELS_DIR
from cosmoseg.galaxies.samplers.base import load_sampler
from cosmoseg.galaxies.stages import SHIPPED_POPULATION, FlowStage, GaussStage, PopulationStage
from cosmoseg.pipeline.config import load_config
from cosmoseg.pipeline.context import RunContext
from cosmoseg.pipeline.params import parse_params

HYPER = {"epochs": 2, "hidden": 8}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stage(cls: type, work_dir: Path | None = None, stage_id: str = "fit", **params: object) -> object:
    parsed, problems = parse_params(cls.Params, dict(params), cls.name)
    assert not problems, problems
    return cls(parsed, RunContext(device=torch.device("cpu"), seed=5, stage_id=stage_id, work_dir=work_dir))


@pytest.fixture(scope="module")
def data() -> tuple:
    halos = toy_halos(torch.Generator().manual_seed(0))
    return halos, paint_galaxies(halos, seed=1, satellites=False)


# ---- save_model: checked with the params -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/tmp/flow.pt", "must be a file name inside the run's output folder (e.g. 'flow.pt'), got the absolute path"),
        ("~/flow.pt", "got the absolute path '~/flow.pt'"),
        ("../flow.pt", "must stay inside the run's output folder, got '../flow.pt', which climbs out with '..'"),
        ("models/../../flow.pt", "climbs out with '..'"),
        (".hidden.pt", "must not name hidden files or folders"),
        ("flow.h5", "must be a file name ending in '.pt', got 'flow.h5'"),
        ("manifest.json", "ending in '.pt'"),
    ],
)
def test_save_model_outside_the_run_folder_is_refused_when_the_params_are_checked(value: str, message: str) -> None:
    _, problems = parse_params(GaussStage.Params, {"save_model": value}, GaussStage.name)
    assert any(message in problem for problem in problems), problems


def test_good_save_model_names_and_the_clash_with_model() -> None:
    for value in ("flow.pt", "models/flow.pt", ""):
        _, problems = parse_params(GaussStage.Params, {"save_model": value}, GaussStage.name)
        assert not problems, problems
    _, problems = parse_params(GaussStage.Params, {"save_model": "a.pt", "model": "b.pt"}, GaussStage.name)
    assert any("'model' and 'save_model' exclude each other" in problem for problem in problems), problems


def test_save_model_without_a_run_folder_is_an_error(
    data: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    halos, truth = data
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="runs without one"):
        _stage(GaussStage, hyper=HYPER, save_model="gauss.pt").run(halos, train_halos=halos, train_galaxies=truth)
    assert not list(tmp_path.iterdir())


def test_save_model_when_nothing_is_fitted_is_an_error(data: tuple, tmp_path: Path) -> None:
    halos, _ = data
    with pytest.raises(ValidationError, match="no sampler is fitted here"):
        _stage(FlowStage, tmp_path, save_model="flow.pt").run(halos)
    assert not list(tmp_path.iterdir())


def test_save_model_writes_inside_the_run_folder_and_the_meta_names_it(data: tuple, tmp_path: Path) -> None:
    halos, truth = data
    stage = _stage(GaussStage, tmp_path, hyper=HYPER, save_model="models/gauss.pt")
    galaxies = stage.run(halos, train_halos=halos, train_galaxies=truth)["galaxies"]
    path = tmp_path / "fit" / "models" / "gauss.pt"  # the stage's own folder of the run folder
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "fit",
        "fit/models",
        "fit/models/gauss.pt",
    ]  # no temporary left behind
    card = load_sampler(path).card
    assert card["written_by_stage"] == "fit" and card["written_by"] == "galaxies.gauss"
    meta = galaxies.meta
    assert meta["model"] == meta["model_origin"] == f"fitted in this run on {len(halos)} centrals"
    assert meta["model_file"] == "fit/models/gauss.pt" and meta["model_sha256"] == _sha256(path)


def test_another_file_is_never_overwritten_and_nothing_is_fitted_first(
    data: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    halos, truth = data
    foreign = tmp_path / "fit" / "gauss.pt"
    foreign.parent.mkdir()
    foreign.write_bytes(b"someone else's file")
    from cosmoseg.galaxies.samplers.base import JointSampler

    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sampler was fitted before the file was checked")

    monkeypatch.setattr(JointSampler, "fit", no_fit)
    with pytest.raises(ValidationError, match=r"exists, written not by a stage; refusing to overwrite it"):
        _stage(GaussStage, tmp_path, hyper=HYPER, save_model="gauss.pt").run(
            halos, train_halos=halos, train_galaxies=truth
        )
    assert foreign.read_bytes() == b"someone else's file"


def test_a_stage_replaces_its_own_file_but_not_another_stages(data: tuple, tmp_path: Path) -> None:
    halos, truth = data
    first = _stage(GaussStage, tmp_path, hyper=HYPER, save_model="gauss.pt")
    first.run(halos, train_halos=halos, train_galaxies=truth)
    path = tmp_path / "fit" / "gauss.pt"
    before = _sha256(path)
    # the same stage again (a --resume re-run after its inputs changed): its own file is replaced
    again = _stage(GaussStage, tmp_path, hyper={"epochs": 3, "hidden": 8}, save_model="gauss.pt")
    meta = again.run(halos, train_halos=halos, train_galaxies=truth)["galaxies"].meta
    assert meta["model_sha256"] == _sha256(path) != before
    # another stage (another stage name under the same id, or a file copied in from another stage) may not
    from cosmoseg.galaxies.stages import RegressionStage

    regression = _stage(RegressionStage, tmp_path, hyper={"epochs": 1, "hidden": 8}, save_model="gauss.pt")
    with pytest.raises(ValidationError, match="refusing to overwrite"):
        regression.run(halos, train_halos=halos, train_galaxies=truth)
    assert _sha256(path) == meta["model_sha256"]
    copied = tmp_path / "other" / "gauss.pt"
    copied.parent.mkdir()
    copied.write_bytes(path.read_bytes())
    other = _stage(GaussStage, tmp_path, stage_id="other", hyper=HYPER, save_model="gauss.pt")
    with pytest.raises(ValidationError, match=r"written by stage 'fit' \(galaxies.gauss\); refusing to overwrite"):
        other.run(halos, train_halos=halos, train_galaxies=truth)


# ---- provenance ----------------------------------------------------------------------------------------


def test_the_shipped_flow_is_named_with_its_checksum(data: tuple) -> None:
    halos, _ = data
    meta = _stage(FlowStage).run(halos)["galaxies"].meta
    assert meta["model"] == meta["model_file"] == "cosmoseg/galaxies/default_models/flow.pt"
    assert meta["model_origin"] == "shipped" and meta["model_sha256"] == _sha256(DEFAULT_MODELS_DIR / "flow.pt")
    assert "fitted" not in meta["model"]


def test_a_given_model_file_is_named_with_its_checksum(data: tuple, tmp_path: Path) -> None:
    halos, truth = data
    _stage(GaussStage, tmp_path, hyper=HYPER, save_model="g.pt").run(halos, train_halos=halos, train_galaxies=truth)
    path = tmp_path / "fit" / "g.pt"
    meta = _stage(GaussStage, model=str(path)).run(halos)["galaxies"].meta
    assert meta["model"] == meta["model_file"] == str(path.resolve())
    assert meta["model_origin"] == "file" and meta["model_sha256"] == _sha256(path)


def test_a_sampler_fitted_and_not_saved_says_so(data: tuple) -> None:
    halos, truth = data
    meta = _stage(GaussStage, hyper=HYPER).run(halos, train_halos=halos, train_galaxies=truth)["galaxies"].meta
    assert meta["model"] == f"fitted in this run on {len(halos)} centrals"
    assert meta["model_file"] == "" and meta["model_sha256"] == ""


def test_the_population_stage_names_its_model_file_and_checksum(data: tuple, tmp_path: Path) -> None:
    halos, _ = data
    meta = _stage(PopulationStage).run(halos)["galaxies"].meta
    assert meta["model"] == "population"  # the kind of model, as the mock catalog's "source" reads it
    assert meta["model_file"] == "cosmoseg/galaxies/default_models/population.pt"
    assert meta["model_origin"] == "shipped" and meta["model_sha256"] == _sha256(SHIPPED_POPULATION)
    copy = tmp_path / "population copy.pt"
    copy.write_bytes(SHIPPED_POPULATION.read_bytes())
    meta = _stage(PopulationStage, model=str(copy)).run(halos)["galaxies"].meta
    assert meta["model_file"] == str(copy.resolve()) and meta["model_origin"] == "file"
    assert meta["model_sha256"] == _sha256(SHIPPED_POPULATION)
    fitted = _stage(PopulationStage, hyper={"epochs": 1, "hidden_features": 8, "layers": 1})
    train = paint_galaxies(halos, seed=3)
    meta = fitted.run(halos, train_halos=halos, train_galaxies=train)["galaxies"].meta
    assert meta["model_origin"] == f"fitted in this run on {len(train)} galaxies"
    assert meta["model_file"] == "" and meta["model_sha256"] == ""


# ---- in a pipeline -------------------------------------------------------------------------------------

PLUGIN = '''
from cosmoseg import HaloCatalog, Stage, hookimpl
from cosmoseg.galaxies._examples import toy_halos


class ToyHalos(Stage):
    """Toy haloes for the save_model tests."""

    name = "testhalos.toy"
    outputs = {"halos": HaloCatalog}

    def run(self):
        return {"halos": toy_halos(self.ctx.make_generator("cpu"))}


@hookimpl
def cosmoseg_register_stages(register):
    register(ToyHalos)
'''


def _pipeline(tmp_path: Path, fit_stages: str) -> Path:
    (tmp_path / "toy_halos_plugin.py").write_text(PLUGIN)
    text = f"""
        [run]
        seed = 1
        output = "{tmp_path / "out"}"
        plugins = ["{tmp_path / "toy_halos_plugin.py"}"]

        [[stage]]
        id = "halos"
        uses = "testhalos.toy"

        [[stage]]
        id = "truth"
        uses = "galaxies.model"
        inputs = {{ halos = "halos.halos" }}
        params = {{ satellites = false }}
        """
    path = tmp_path / "pipeline.toml"
    path.write_text(textwrap.dedent(text) + textwrap.dedent(fit_stages))
    return path


FIT = """
[[stage]]
id = "{id}"
uses = "galaxies.gauss"
inputs = {{ halos = "halos.halos", train_halos = "halos.halos", train_galaxies = "truth.galaxies" }}
params = {{ save_model = "{name}", hyper = {{ epochs = {epochs}, hidden = 8 }} }}
"""


def test_in_a_pipeline_the_file_lands_in_the_run_folder_and_resume_keeps_working(tmp_path: Path) -> None:
    config_path = _pipeline(tmp_path, FIT.format(id="fit", name="models/gauss.pt", epochs=2))
    run_pipeline(load_config(config_path))
    saved = tmp_path / "out" / "fit" / "models" / "gauss.pt"
    from cosmoseg import load_artifact

    meta = load_artifact(tmp_path / "out" / "fit.h5")["galaxies"].meta
    assert meta["model_file"] == "fit/models/gauss.pt" and meta["model_sha256"] == _sha256(saved)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "fit/models/gauss.pt" in manifest["stages"]["fit"]["work_files"]  # described with its stage
    # nothing changed: skipped; a changed param: the stage runs again and replaces its own file
    result = run_pipeline(load_config(config_path), resume=True)
    assert {r.id: r.status for r in result.records}["fit"] == "skipped"
    before = _sha256(saved)
    config_path.write_text(config_path.read_text().replace("epochs = 2", "epochs = 3"))
    result = run_pipeline(load_config(config_path), resume=True)
    assert {r.id: r.status for r in result.records}["fit"] == "ran"
    meta = load_artifact(tmp_path / "out" / "fit.h5")["galaxies"].meta
    assert meta["model_sha256"] == _sha256(saved) != before


def test_in_a_pipeline_two_stages_keep_their_files_apart_and_absolute_paths_are_refused_before_running(
    tmp_path: Path,
) -> None:
    both = FIT.format(id="one", name="gauss.pt", epochs=1) + FIT.format(id="two", name="gauss.pt", epochs=2)
    run_pipeline(load_config(_pipeline(tmp_path, both)))
    one, two = tmp_path / "out" / "one" / "gauss.pt", tmp_path / "out" / "two" / "gauss.pt"
    assert _sha256(one) != _sha256(two)
    assert load_sampler(two).card["written_by_stage"] == "two"
    absolute = FIT.format(id="fit", name=str(tmp_path / "elsewhere.pt"), epochs=1)
    config_path = _pipeline(tmp_path, absolute)
    config_path.write_text(config_path.read_text().replace(str(tmp_path / "out"), str(tmp_path / "fresh")))
    with pytest.raises(CosmosegError, match="got the absolute path"):
        run_pipeline(load_config(config_path))
    assert not (tmp_path / "elsewhere.pt").exists() and not (tmp_path / "fresh" / "halos.h5").exists()
