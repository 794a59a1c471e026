"""``cosmoseg protohalo experiment density|tidal|sigma8|bias``: clear errors, outputs kept, and the shipped pair end
to end on a 32³ box (the default models' cell size, one crop)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import Box, Cosmology, Field, Segmentation, save_artifact
from cosmoseg.protohalo.experiment_commands import parse_values

LENGTH, N = 25.0, 32  # 0.78 Mpc/h cells, as the shipped pair


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), ["protohalo", "experiment", *args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32³ box of 25 Mpc/h: linear fields of a seed, and as its "truth" the connected regions of δ > 1.5."""
    from scipy import ndimage

    from cosmoseg.sim.ics import initial_conditions

    ics = initial_conditions(Cosmology(power_backend="eisenstein-hu"), n=N, length=LENGTH, seed=3)
    labels, _ = ndimage.label((ics.fields.channel("delta") > 1.5).numpy())
    truth = Segmentation(labels=torch.as_tensor(labels, dtype=torch.int64), box=ics.fields.box)
    path = tmp_path_factory.mktemp("experiment") / "box.h5"
    save_artifact(path, {"fields": ics.fields, "segmentation": truth})
    return path


@pytest.fixture(scope="module")
def delta_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    box = Box(length=LENGTH)
    fields = Field(values=torch.zeros((1, N, N, N)), box=box, channels=("delta",))
    labels = torch.zeros((N, N, N), dtype=torch.int64)
    labels[:3, :3, :3] = 1
    path = tmp_path_factory.mktemp("experiment") / "delta_only.h5"
    save_artifact(path, {"fields": fields, "segmentation": Segmentation(labels=labels, box=box)})
    return path


def test_the_experiments_are_registered_under_protohalo() -> None:
    code, output = _run("--help")
    assert code == 0
    for name in ("density", "tidal", "sigma8", "bias"):
        assert name in output


def test_values_are_parsed_or_refused_by_name() -> None:
    assert parse_values(" -0.5, 0 ,0.5", "--epsilons") == [-0.5, 0.0, 0.5]
    for text, match in (("", "give"), ("0.1,x", "'x' is not a number"), ("nan", "finite"), ("1,1", "repeated")):
        with pytest.raises(ValueError, match=match):
            parse_values(text, "--epsilons")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["density", "{missing}", "--halo", "1"], "no such box file"),
        (["density", "{delta_only}", "--halo", "1"], "lack the channel(s) ['phi']"),
        (["density", "{box}", "--halo", "9999"], "unknown halo id 9999"),
        (["density", "{box}", "--halo", "1", "--largest"], "exactly one of --halo ID and --largest"),
        (["density", "{box}"], "exactly one of --halo ID and --largest"),
        (["density", "{box}", "--halo", "1", "--epsilons", "0.1,abc"], "--epsilons: 'abc' is not a number"),
        (["tidal", "{box}", "--largest", "--lambdas", "0.5,0.5"], "--lambdas: repeated values"),
        (["sigma8", "{box}", "--factors", "0.7,-1"], "--factors must be > 0"),
        (["bias", "{box}", "--potential", "linear"], "--potential must be quadratic or poisson"),
        (["bias", "{box}", "--epsilon", "0"], "--epsilon must be in (0, 1.686)"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(
    args: list[str], message: str, box: Path, delta_only: Path, tmp_path: Path
) -> None:
    paths = {"box": box, "delta_only": delta_only, "missing": tmp_path / "nowhere.h5"}
    out = tmp_path / "out"
    code, output = _run(*[a.format(**paths) for a in args], "--output", str(out))
    assert code == 1
    assert output.startswith("error: ") and message in output, output
    assert "Traceback" not in output
    assert not out.exists()


def test_an_existing_table_is_kept_without_overwrite(box: Path, tmp_path: Path) -> None:
    (tmp_path / "density_halo1.csv").write_text("keep")
    code, output = _run("density", str(box), "--halo", "1", "--output", str(tmp_path))
    assert code == 1 and "--overwrite" in output and "density_halo1.csv" in output
    assert (tmp_path / "density_halo1.csv").read_text() == "keep"
    assert not (tmp_path / "density_halo1.png").exists()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


@pytest.mark.slow
def test_density_and_tidal_with_the_shipped_pair(box: Path, tmp_path: Path) -> None:
    figure = tmp_path / "fig" / "density.png"
    args = ["--largest", "--epsilons", "-0.5,0,0.5", "--output", str(tmp_path), "--device", "cpu"]
    code, output = _run("density", str(box), *args, "--figure", str(figure))
    assert code == 0, output
    (table,) = tmp_path.glob("density_halo*.csv")
    rows = _rows(table)
    assert [float(r["epsilon"]) for r in rows] == [-0.5, 0.0, 0.5]
    assert float(rows[1]["iou_unmodified"]) == 1.0 or int(rows[1]["n_voxels"]) == 0
    assert figure.stat().st_size > 0 and "spherical collapse" in output
    before = table.read_text()
    code, output = _run("density", str(box), *args, "--figure", str(figure))
    assert code == 1 and "--overwrite" in output and table.read_text() == before
    code, output = _run("density", str(box), *args, "--figure", str(figure), "--overwrite")
    assert code == 0, output
    code, output = _run("tidal", str(box), "--largest", "--lambdas", "-0.5,0.5", "--output", str(tmp_path))
    assert code == 0, output
    assert len(_rows(next(tmp_path.glob("tidal_halo*.csv")))) == 2 and next(tmp_path.glob("tidal_halo*.png"))


@pytest.mark.slow
def test_sigma8_and_bias_with_the_shipped_pair(box: Path, tmp_path: Path) -> None:
    # 1.0, the reference, is added to the factors
    code, output = _run(
        "sigma8", str(box), "--factors", "0.8,1.2", "--no-simulate", "--bins", "3", "--output", str(tmp_path)
    )
    assert code == 0, output
    rows = _rows(tmp_path / "sigma8.csv")
    assert sorted({float(r["factor"]) for r in rows}) == [0.8, 1.0, 1.2] and len(rows) == 9
    assert all(r["counts_sim"] == "-1" for r in rows)
    code, output = _run("bias", str(box), "--epsilon", "0.1", "--bins", "2", "--output", str(tmp_path))
    assert code == 0, output
    rows = _rows(tmp_path / "bias_quadratic.csv")
    assert len(rows) == 2 and "b1L network" in output
    # a box that is not part of a suite cannot be re-simulated at another σ8: one clear error
    code, output = _run("sigma8", str(box), "--factors", "0.8", "--output", str(tmp_path / "sim"))
    assert code == 1 and "no suite.json" in output and "Traceback" not in output
