"""The samplers' centrals over chunks (issue #23): draws in fixed blocks of halo rows, so chunks of whole blocks in
this process, on a Dask cluster, from a file into chunk files, and through a stage's executor all give the
single-process catalog bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import GalaxyCatalog, save_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies._examples import toy_halos
from cosmoseg.galaxies.centrals import DRAW_BLOCK, sample_centrals
from cosmoseg.galaxies.centrals_chunks import sample_chunked, sample_file
from cosmoseg.galaxies.chunks import load_chunks
from cosmoseg.galaxies.features import central_rows
from cosmoseg.galaxies.model import paint_galaxies
from cosmoseg.galaxies.samplers.base import JointSampler, sampler_class
from cosmoseg.galaxies.stages import FlowStage, GaussStage, HiValStage, RegressionStage
from cosmoseg.pipeline.context import RunContext
from cosmoseg.pipeline.executor import executor_config, local_map, open_executor
from cosmoseg.pipeline.params import parse_params

from .catalogs import same_catalog

BLOCK = 256
"""A small draw block, so that the toy catalog spans many blocks."""
CONDITIONS = ["log_mass", "concentration"]
TARGETS = ["log_mstar", "log_ssfr"]
STAGES = {"gauss": GaussStage, "regression": RegressionStage, "flow": FlowStage, "hival": HiValStage}


@pytest.fixture(scope="module")
def halos() -> object:
    return toy_halos(torch.Generator().manual_seed(3), n=3000)


def fitted(method: str, halos: object) -> JointSampler:
    """A tiny sampler of ``method`` fitted on the toy haloes' painted centrals."""
    truth = paint_galaxies(halos, seed=1, satellites=False)
    x, y = central_rows(halos, truth, CONDITIONS, TARGETS)
    sampler = sampler_class(method)(CONDITIONS, TARGETS, **STAGES[method].example_hyper)
    return sampler.fit(x, y, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def gauss(halos) -> JointSampler:
    return fitted("gauss", halos)


@pytest.mark.parametrize("method", ["gauss", "regression", "flow", "hival"])
def test_chunks_in_this_process_give_the_single_run(halos, method: str, one_torch_thread: None) -> None:
    sampler = fitted(method, halos)
    cut = float(halos["mass"].median())  # blocks count the rows before the cut
    whole = sample_centrals(sampler, halos, seed=7, min_mass=cut, provenance={"model_file": "x"}, block_rows=BLOCK)
    assert len(whole) == int((halos["mass"] >= cut).sum())
    assert torch.equal(whole["host"], torch.nonzero(halos["mass"] >= cut).reshape(-1))
    for chunk_rows in (BLOCK, 3 * BLOCK, 4096):
        chunked = sample_chunked(
            sampler, halos, 7, chunk_rows=chunk_rows, min_mass=cut, provenance={"model_file": "x"}, block_rows=BLOCK,
            map_tasks=local_map,
        )  # fmt: skip
        assert same_catalog(whole, chunked), chunk_rows
    other = sample_centrals(sampler, halos, seed=8, min_mass=cut, block_rows=BLOCK)
    assert not torch.equal(other[TARGETS[0]], whole[TARGETS[0]])  # the seed matters


def test_chunk_rows_must_be_whole_blocks(halos, gauss) -> None:
    with pytest.raises(ValidationError, match=r"multiple of the draw block, 256 halo rows.*got 300; e\.g\. 256 or 512"):
        sample_chunked(gauss, halos, 7, chunk_rows=300, block_rows=BLOCK)
    with pytest.raises(ValidationError, match="multiple of the draw block"):
        sample_file("halos.h5", "out", gauss, 7, chunk_rows=1000)
    _, problems = parse_params(GaussStage.Params, {"chunk_rows": 100_000}, GaussStage.name)
    assert any(f"multiple of the draw block, {DRAW_BLOCK} halo rows" in p and "got 100000" in p for p in problems)
    with pytest.raises(ValidationError, match="a seed or a generator"):
        sample_centrals(gauss, halos)


def test_the_stage_chunks_through_its_executor(gauss, tmp_path: Path, one_torch_thread: None) -> None:
    """A stage's chunk_rows (whole blocks of DRAW_BLOCK rows) sends one task per chunk to ctx.map_tasks."""
    halos = toy_halos(torch.Generator().manual_seed(4), n=2 * DRAW_BLOCK + 1000)
    path = tmp_path / "gauss.pt"
    gauss.save(path)
    calls: list[int] = []

    def counting_map(function, items):
        calls.append(len(items))
        return local_map(function, items)

    def stage_run(chunk_rows: int) -> GalaxyCatalog:
        params, problems = parse_params(GaussStage.Params, {"model": str(path), "chunk_rows": chunk_rows}, "g")
        assert not problems, problems
        ctx = RunContext(device=torch.device("cpu"), seed=5, stage_id="t", map_tasks=counting_map)
        return GaussStage(params, ctx).run(halos)["galaxies"]

    whole, chunked = stage_run(0), stage_run(DRAW_BLOCK)
    assert calls == [3] and same_catalog(whole, chunked)


@pytest.mark.slow
def test_chunks_on_a_cluster_and_in_files_give_the_single_run(
    halos, gauss, tmp_path: Path, dask_scheduler: str
) -> None:
    whole = sample_centrals(gauss, halos, seed=11, min_mass=1e12, block_rows=BLOCK)
    save_artifact(tmp_path / "halos.h5", {"halos": halos})
    with open_executor(executor_config("dask", scheduler=dask_scheduler)) as executor:
        chunked = sample_chunked(
            gauss, halos, 11, chunk_rows=3 * BLOCK, min_mass=1e12, block_rows=BLOCK, map_tasks=executor.map
        )
        paths = sample_file(
            tmp_path / "halos.h5", tmp_path / "mock", gauss, 11, chunk_rows=3 * BLOCK, min_mass=1e12,
            block_rows=BLOCK, map_tasks=executor.map,
        )  # fmt: skip
    assert same_catalog(whole, chunked)
    assert [p.name for p in paths] == [f"galaxies_{i:05d}.h5" for i in range(4)]
    assert same_catalog(whole, load_chunks(tmp_path / "mock"))
    # resume keeps the chunks written with the same inputs and makes a missing one again
    paths[2].unlink()
    messages: list[str] = []
    sample_file(
        tmp_path / "halos.h5", tmp_path / "mock", gauss, 11, chunk_rows=3 * BLOCK, min_mass=1e12, block_rows=BLOCK,
        resume=True, log=messages.append,
    )  # fmt: skip
    assert sum("skipped" in m for m in messages) == 3 and same_catalog(whole, load_chunks(tmp_path / "mock"))
    # another seed is another run: resume redoes every chunk
    messages.clear()
    sample_file(
        tmp_path / "halos.h5", tmp_path / "mock", gauss, 12, chunk_rows=3 * BLOCK, min_mass=1e12, block_rows=BLOCK,
        resume=True, log=messages.append,
    )  # fmt: skip
    assert not any("skipped" in m for m in messages)


def test_the_sample_command_writes_chunks(gauss, tmp_path: Path, one_torch_thread: None) -> None:
    halos = toy_halos(torch.Generator().manual_seed(5), n=DRAW_BLOCK + 10)
    save_artifact(tmp_path / "halos.h5", {"halos": halos})
    gauss.save(tmp_path / "gauss.pt")
    args = ["galaxies", "sample", str(tmp_path / "halos.h5"), "--output", str(tmp_path / "mock"), "--model"]
    args += [str(tmp_path / "gauss.pt"), "--seed", "3", "-q"]
    result = CliRunner().invoke(build_app(), [*args, "--chunk-rows", str(DRAW_BLOCK)])
    assert result.exit_code == 0, result.output
    assert "2 chunk file(s)" in result.output
    joined = load_chunks(tmp_path / "mock")
    whole = sample_centrals(gauss, halos, seed=3)
    assert all(torch.equal(joined[k], whole[k]) for k in whole.columns)
    assert joined.meta["model_origin"] == "file" and joined.meta["model_file"] == str((tmp_path / "gauss.pt").resolve())
    result = CliRunner().invoke(build_app(), [*args, "--chunk-rows", "1000"])
    assert result.exit_code == 1 and "multiple of the draw block" in result.output
