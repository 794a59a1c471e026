"""The HOD over chunks (issue #23): chunks in this process, on a Dask cluster, from a file into chunk files, and
through a pipeline's executor all give the single-process catalog bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg import run_pipeline
from cosmoseg.cli import build_app
from cosmoseg.data import save_artifact
from cosmoseg.galaxies._examples import toy_halos
from cosmoseg.galaxies.hod import HODParams, populate, prepare_hod
from cosmoseg.galaxies.hod_chunks import chunk_bounds, load_chunks, populate_chunked, populate_file
from cosmoseg.pipeline import load_config
from cosmoseg.pipeline.executor import executor_config, open_executor
from cosmoseg.plugins import registry_for_config

from .catalogs import same_catalog

PARAMS = HODParams(log_m_min=12.0, log_m1=13.0, alpha_c=0.3)
DECORATED = HODParams(log_m_min=12.0, log_m1=13.0, a_cen=0.5, a_sat=-0.4)


@pytest.fixture(scope="module")
def halos() -> object:
    return toy_halos(torch.Generator().manual_seed(3), n=3000)


def test_chunk_bounds_cover_the_rows() -> None:
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(0, 4) == [(0, 0)]


@pytest.mark.parametrize(("params", "secondary"), [(PARAMS, None), (DECORATED, "concentration")])
def test_chunks_in_this_process_give_the_single_run(halos, params: HODParams, secondary: str | None) -> None:
    whole = populate(prepare_hod(halos, secondary=secondary), params, 11)
    for chunk_rows in (97, 777, 5000):
        chunked = populate_chunked(halos, params, 11, chunk_rows=chunk_rows, secondary=secondary)
        assert same_catalog(whole, chunked), chunk_rows


@pytest.mark.slow
def test_chunks_on_a_cluster_and_in_files_give_the_single_run(halos, tmp_path: Path, dask_scheduler: str) -> None:
    whole = populate(prepare_hod(halos, secondary="concentration"), DECORATED, 11)
    save_artifact(tmp_path / "halos.h5", {"halos": halos})
    with open_executor(executor_config("dask", scheduler=dask_scheduler)) as executor:
        chunked = populate_chunked(
            halos, DECORATED, 11, chunk_rows=700, secondary="concentration", map_tasks=executor.map
        )
        paths = populate_file(
            tmp_path / "halos.h5", tmp_path / "mock", DECORATED, 11, chunk_rows=700, secondary="concentration",
            map_tasks=executor.map,
        )  # fmt: skip
    assert same_catalog(whole, chunked)
    assert [p.name for p in paths] == [f"galaxies_{i:05d}.h5" for i in range(5)]
    assert same_catalog(whole, load_chunks(tmp_path / "mock"))
    # resume keeps the chunks written with the same inputs and makes a missing one again
    paths[3].unlink()
    messages: list[str] = []
    populate_file(
        tmp_path / "halos.h5", tmp_path / "mock", DECORATED, 11, chunk_rows=700, secondary="concentration",
        resume=True, log=messages.append,
    )  # fmt: skip
    assert sum("skipped" in m for m in messages) == 4 and same_catalog(whole, load_chunks(tmp_path / "mock"))


def test_a_pipeline_with_a_dask_executor_chunks_the_hod_stage(halos, tmp_path: Path, dask_scheduler: str) -> None:
    save_artifact(tmp_path / "halos.h5", {"halos": halos})
    plugin = tmp_path / "halo_file.py"
    plugin.write_text(
        "from cosmoseg import HaloCatalog, Stage, hookimpl\n"
        "from cosmoseg.pipeline import NoParams\n"
        "from cosmoseg.data import load_artifact\n\n"
        "class HaloFile(Stage):\n"
        '    """The haloes of the test\'s file."""\n'
        '    name = "test.halo_file"\n'
        "    Params = NoParams\n"
        '    outputs = {"halos": HaloCatalog}\n\n'
        "    def run(self):\n"
        f'        return {{"halos": load_artifact({str(tmp_path / "halos.h5")!r})["halos"]}}\n\n'
        "@hookimpl\n"
        "def cosmoseg_register_stages(register):\n"
        "    register(HaloFile)\n"
    )
    text = f"""
[run]
seed = 4
plugins = ["{plugin}"]
executor = "dask"
scheduler = "{dask_scheduler}"

[[stage]]
id = "halos"
uses = "test.halo_file"

[[stage]]
id = "hod"
uses = "galaxies.hod"
inputs = {{ halos = "halos.halos" }}
params = {{ log_m_min = 12.0, log_m1 = 13.0, chunk_rows = 1000 }}
"""
    (tmp_path / "mock.toml").write_text(text)
    config = load_config(tmp_path / "mock.toml")
    spread = run_pipeline(config, registry=registry_for_config(config), output_dir=tmp_path / "dask")
    local_text = text.replace("chunk_rows = 1000", "chunk_rows = 0").replace('executor = "dask"', "")
    (tmp_path / "local.toml").write_text(local_text.replace(f'scheduler = "{dask_scheduler}"', ""))
    local = load_config(tmp_path / "local.toml")
    alone = run_pipeline(local, registry=registry_for_config(local), output_dir=tmp_path / "local")
    assert same_catalog(spread.load("hod")["galaxies"], alone.load("hod")["galaxies"])
    manifest = spread.manifest_path.read_text()
    assert f"dask at {dask_scheduler}" in manifest


def test_the_hod_command_writes_chunks_on_the_cluster(halos, tmp_path: Path, dask_scheduler: str) -> None:
    save_artifact(tmp_path / "halos.h5", {"halos": halos})
    args = ["galaxies", "hod", str(tmp_path / "halos.h5"), "--output", str(tmp_path / "mock"), "--chunk-rows", "1000"]
    args += ["--hod", "log_m_min=12.0", "--hod", "log_m1=13.0", "--seed", "11", "-q"]
    result = CliRunner().invoke(build_app(), [*args, "--executor", "dask", "--scheduler", dask_scheduler])
    assert result.exit_code == 0, result.output
    assert "3 chunk file(s)" in result.output
    whole = populate(prepare_hod(halos), HODParams(log_m_min=12.0, log_m1=13.0), 11)
    assert same_catalog(whole, load_chunks(tmp_path / "mock"))
    result = CliRunner().invoke(build_app(), [*args, "--executor", "dask"])
    assert result.exit_code == 1 and 'executor "dask" needs a scheduler address' in result.output
