"""``cosmoseg mock`` end to end on files written the way Gadget-4 and TNG write them, and its bad inputs.

The run: a 32^3-particle particle-mesh box in 32 Mpc/h, written as a Gadget-4 snapshot (NTYPES = 2, kpc/h code
units, two chunks, dataset unit attributes) and as a Gadget-4 FoF catalog (GroupMassType of shape (N, 2)); a DM +
gas version (gas ids 1..N, dark matter N+1..2N); and a TNG-style catalog of a "hydro run" (the galaxy model's
galaxies as subhaloes with stars) that trains a population model through `cosmoseg galaxies train`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.cli.mock import MOCK_PIPELINE
from cosmoseg.data import Cosmology, HaloCatalog, Particles, load_artifact
from cosmoseg.galaxies.model import paint_galaxies
from cosmoseg.io.writers import write_gadget4_groups, write_gadget4_snapshot, write_tng_catalog
from cosmoseg.sim.fof import find_halos
from cosmoseg.sim.ics import initial_conditions
from cosmoseg.sim.nbody import run_pm

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
APP = build_app()


@dataclass(frozen=True)
class Run:
    particles: Particles
    halos: HaloCatalog
    snapshot: Path  # the snapdir of the DM-only run
    groups: Path  # its fof_tab folder
    hydro_snapshot: Path  # the DM + gas run
    tng: Path  # the hydro run's group catalog


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("gadget")
    cosmology = Cosmology(power_backend="eisenstein-hu")
    particles = initial_conditions(cosmology, n=32, length=32.0, seed=5, z_start=19.0).particles
    final = run_pm(particles, steps=8)[-1]
    halos, _ = find_halos(final, min_particles=20)
    write_gadget4_snapshot(final, folder / "dmo" / "snapdir_005", n_files=2, n_types=2)
    write_gadget4_groups(halos, folder / "dmo" / "groups_005", n_files=2, n_types=2)
    write_gadget4_snapshot(final, folder / "hydro" / "snapdir_005", n_files=2, n_types=2, gas=True)
    galaxies = paint_galaxies(halos, seed=1)
    write_tng_catalog(halos, galaxies, folder / "hydro" / "groups_099", n_files=2)
    return Run(
        final,
        halos,
        folder / "dmo" / "snapdir_005",
        folder / "dmo" / "groups_005",
        folder / "hydro" / "snapdir_005",
        folder / "hydro" / "groups_099",
    )


def invoke(*args: object):
    return runner.invoke(APP, [str(a) for a in args])


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_the_config_file_is_the_pipeline_the_command_runs() -> None:
    assert (ROOT / "configs" / "mock.toml").read_text() == MOCK_PIPELINE
    stages = [s["uses"] for s in tomllib.loads(MOCK_PIPELINE)["stage"]]
    assert stages == ["io.snapshot", "sim.fof", "galaxies.population", "galaxies.catalog", "measure.mock_summary"]


def test_a_mock_of_a_gadget4_snapshot_end_to_end(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "mock"
    result = invoke("mock", run.snapshot, "--output", out, "-q")
    assert result.exit_code == 0, result.output
    assert "galaxies" in result.output and "catalog.h5" in result.output
    assert (out / "summary" / "summary.png").stat().st_size > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "the staging folder was left behind"
    # the catalog with h5py alone: one dataset per column, units as attributes, the box on the group
    with h5py.File(out / "catalog.h5", "r") as f:
        cols = f["catalog/columns"]
        pos, rsd = cols["pos"][()], cols["pos_rsd"][()]
        assert cols["pos"].attrs["units"] == "Mpc/h" and cols["host_mass"].attrs["units"] == "Msun/h"
        assert cols["log_mstar"].attrs["units"] == "log10 Msun/h"
        host, central, host_mass = cols["host"][()], cols["is_central"][()], cols["host_mass"][()]
        names = set(cols)
    assert {"pos", "vel", "pos_rsd", "is_central", "host", "host_mass", "log_mstar", "log_ssfr", "color_gi"} <= names
    assert {"log_radius", "log_z"} <= names
    assert pos.min() >= 0 and pos.max() < 32.0
    np.testing.assert_array_equal(pos[:, :2], rsd[:, :2])  # only the line of sight (z) moves
    assert np.abs(rsd[:, 2] - pos[:, 2]).max() > 0
    halos = load_artifact(out / "halos.h5")["halos"]
    np.testing.assert_allclose(host_mass, halos["mass"].numpy()[host], rtol=1e-6)
    assert central.sum() <= len(halos) and (~central).sum() > 0
    # the FoF haloes of the snapshot read back from Gadget-4's layout are the simulator's own
    assert len(halos) == len(run.halos)
    np.testing.assert_allclose(np.sort(halos["mass"].numpy()), np.sort(run.halos["mass"].numpy()), rtol=1e-5)


def test_a_mock_on_the_runs_own_group_catalog_with_two_type_columns(run: Run, tmp_path: Path) -> None:
    with h5py.File(run.groups / "fof_tab_005.0.hdf5", "r") as f:
        assert f["Group/GroupMassType"].shape[1] == 2
    result = invoke("mock", run.snapshot / "snap_005.0.hdf5", "--halos", run.groups, "--output", tmp_path / "m", "-q")
    assert result.exit_code == 0, result.output
    halos = load_artifact(tmp_path / "m" / "halos.h5")["halos"]
    assert len(halos) == len(run.halos) and halos["mass_type"].shape == (len(halos), 2)
    np.testing.assert_allclose(halos["mass"].sum().item(), run.halos["mass"].sum().item(), rtol=1e-5)


def test_a_hydro_runs_dark_matter_maps_back_to_its_lattice(run: Run, tmp_path: Path) -> None:
    result = invoke("mock", run.hydro_snapshot, "--galaxies", "model", "--output", tmp_path / "m", "-q")
    assert result.exit_code == 0, result.output
    with h5py.File(run.hydro_snapshot / "snap_005.0.hdf5", "r") as f:  # gas and dark matter, NTYPES = 2
        assert list(f["Header"].attrs["NumPart_Total"]) == [32**3, 32**3]
        assert int(f["PartType1/ParticleIDs"][()].min()) > 32**3
    particles = load_artifact(tmp_path / "m" / "snapshot.h5")["particles"]
    assert particles.n_grid == 32
    torch.testing.assert_close(torch.sort(particles.ids).values, torch.arange(32**3))
    segmentation = load_artifact(tmp_path / "m" / "halos.h5")["segmentation"]
    assert segmentation.labels.shape == (32, 32, 32) and segmentation.n_instances > 0


def test_a_population_model_trained_on_a_hydro_catalog_makes_the_mock(run: Run, tmp_path: Path) -> None:
    model = tmp_path / "population.pt"
    result = invoke(
        *("galaxies", "train", run.tng / "fof_subhalo_tab_099.0.hdf5", "--satellites", "--min-log-mstar", "7"),
        *("--hyper", "epochs=3", "--hyper", "hidden_features=8", "--hyper", "layers=1", "--output", model),
    )
    assert result.exit_code == 0, result.output
    assert "ks_r_over_r200m" in result.output
    from cosmoseg.galaxies.population import load_population

    card = load_population(model).card
    assert "hydro run's FoF groups" in card["data"] and "--satellites" in card["command"]
    result = invoke("mock", run.snapshot, "--galaxies", model, "--output", tmp_path / "m", "-q")
    assert result.exit_code == 0, result.output
    catalog = load_artifact(tmp_path / "m" / "catalog.h5")["catalog"]
    assert catalog.meta["source"] == "population" and catalog.meta["n_satellites"] > 0


def test_a_model_needing_halo_properties_the_run_lacks_is_refused_by_name(run: Run, tmp_path: Path) -> None:
    model = tmp_path / "m200c.pt"
    result = invoke(
        *("galaxies", "train", run.tng, "--satellites", "--min-log-mstar", "7", "--conditions", "log_mass,m200c"),
        *("--hyper", "epochs=2", "--hyper", "hidden_features=8", "--hyper", "layers=1", "--output", model),
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "m"
    result = invoke("mock", run.snapshot, "--galaxies", model, "--output", out, "-q")
    assert result.exit_code == 1
    text = one_line(result.output)
    assert "['m200c']" in text and "does not have" in text and str(model) in text
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_centrals_only_sampler_is_not_a_population_model(tmp_path: Path, run: Run) -> None:
    shipped = ROOT / "cosmoseg" / "galaxies" / "default_models" / "flow.pt"
    result = invoke("mock", run.snapshot, "--galaxies", shipped, "--output", tmp_path / "m", "-q")
    assert result.exit_code == 1
    assert "central galaxies only, not a population model" in one_line(result.output)


@pytest.mark.parametrize("case", ["missing", "several_outputs", "other_box", "not_hdf5"])
def test_bad_inputs_name_the_file_and_leave_nothing(case: str, run: Run, tmp_path: Path) -> None:
    args: list[object]
    if case == "missing":
        args, expected = [tmp_path / "nope" / "snap_005"], ["no such file or folder", "nope/snap_005"]
    elif case == "several_outputs":
        both = tmp_path / "both"
        both.mkdir()
        for source in run.snapshot.iterdir():
            (both / source.name).write_bytes(source.read_bytes())
            (both / source.name.replace("005", "006")).write_bytes(source.read_bytes())
        args, expected = [both], ["holds several outputs", "snap_005.N.hdf5", "snap_006.N.hdf5"]
    elif case == "other_box":
        halos = HaloCatalog(
            columns={k: run.halos[k] for k in ("pos", "vel", "mass", "n_part")},
            box=run.halos.box.__class__(length=64.0, redshift=0.0, cosmology=run.halos.box.cosmology),
        )
        write_gadget4_groups(halos, tmp_path / "groups_big", n_files=2)
        args = [run.snapshot, "--halos", tmp_path / "groups_big"]
        expected = ["the box side is 64 Mpc/h in", "groups_big but 32 Mpc/h in", "snap_005.0.hdf5"]
    else:
        (tmp_path / "snap.hdf5").write_text("not HDF5")
        args, expected = [tmp_path / "snap.hdf5"], ["not a readable HDF5 file", "snap.hdf5"]
    out = tmp_path / "out"
    result = invoke("mock", *args, "--output", out, "-q")
    assert result.exit_code == 1, result.output
    text = one_line(result.output)
    assert "Traceback" not in text
    for part in expected:
        assert part in text, text
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_existing_output_is_kept_unless_overwrite(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    result = invoke("mock", run.snapshot, "--output", out, "-q")
    assert result.exit_code == 1 and "--overwrite" in one_line(result.output)
    assert (out / "mine.txt").read_text() == "keep"
    result = invoke("mock", run.snapshot, "--output", out, "-q", "--overwrite", "--galaxies", "hod", "--rsd-axis", "x")
    assert result.exit_code == 0, result.output
    assert not (out / "mine.txt").exists() and (out / "catalog.h5").is_file()
    catalog = load_artifact(out / "catalog.h5")["catalog"]
    assert catalog.meta["rsd_axis"] == 0 and "log_mstar" not in catalog  # the HOD draws no properties
    np.testing.assert_array_equal(catalog["pos"][:, 1:].numpy(), catalog["pos_rsd"][:, 1:].numpy())


def test_the_config_runs_with_run_files_set_on_the_command_line(run: Run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(run.snapshot.parent)
    result = invoke(
        *("run", ROOT / "configs" / "mock.toml", "-q", "--output", tmp_path / "r"),
        *("--set", "run.files.snapshot=snapdir_005", "--set", "galaxies.uses=galaxies.model"),
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "summary" / "summary.png").is_file()
    result = invoke("validate", ROOT / "configs" / "mock.toml")
    assert result.exit_code == 1 and "files.snapshot is empty" in one_line(result.output)


def test_an_output_that_is_a_file_is_refused_and_an_empty_folder_is_used(run: Run, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    result = invoke("mock", run.snapshot, "--output", tmp_path / "afile", "-q", "--galaxies", "hod")
    assert result.exit_code == 1 and "exists and is not a folder" in one_line(result.output)
    assert (tmp_path / "afile").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    result = invoke("mock", run.snapshot, "--output", tmp_path / "empty", "-q", "--galaxies", "hod")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "empty" / "catalog.h5").is_file()
