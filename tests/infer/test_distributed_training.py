"""Graph-network training data-parallel: 2 gloo ranks, each on its share of every batch of graphs (a ragged last
batch included) and of the validation graphs, give the weights, losses and early stopping of 1 process (both heads:
the moment loss is a log of sums over the batch, combined exactly); only rank 0 writes the model file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ddp_helpers import run_ranks

from cosmoseg.data import Box, Cosmology, GalaxyCatalog, save_artifact
from cosmoseg.infer.evaluation import train_from_folder
from cosmoseg.infer.graphs import GraphSpec
from cosmoseg.infer.systematics import parse_systematics
from cosmoseg.infer.training import TrainSettings, load_model, train_model
from cosmoseg.nn.distributed import get_world_size

pytest.importorskip("torch_geometric")

SPEC = GraphSpec(r_link=4.0)
PRIOR = ([0.1, 0.6], [0.5, 1.0])


def _catalogs() -> dict[int, GalaxyCatalog]:
    """7 small boxes whose galaxy count grows with Ω_m."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for i in range(7):
        omega_m, sigma_8 = 0.1 + 0.4 * (i + 0.5) / 7, 0.6 + 0.4 * ((3 * i) % 7 + 0.5) / 7
        n = int(30 + 100 * omega_m)
        box = Box(length=20.0, cosmology=Cosmology(omega_m=omega_m, sigma_8=sigma_8))
        columns = {"pos": torch.rand((n, 3), generator=g) * 20.0, "vel": torch.randn((n, 3), generator=g) * 150.0}
        out[i] = GalaxyCatalog(columns=columns, box=box, meta={"galaxy_model": "toy"})
    return out


def _train(head: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """3 epochs on 5 boxes in batches of 3 (3 + 2: shares 2/1 and 1/1), validated on 2."""
    catalogs = _catalogs()
    settings = TrainSettings(head=head, hidden=8, layers=1, max_epochs=3, patience=5, batch_size=3, lr=1e-2)
    train = {i: catalogs[i] for i in range(5)}
    validation = {i: catalogs[i] for i in (5, 6)}
    model, history = train_model(train, validation, SPEC, parse_systematics(""), settings, prior=PRIOR)
    return model.state_dict(), history


FOLDER_SETTINGS = TrainSettings(hidden=8, layers=1, max_epochs=2, patience=5, batch_size=4, lr=1e-2)


def _from_folder(galaxies: Path, output: Path) -> Path:
    kwargs = {"n_validation": 2, "n_test": 1, "seed": 0, "device": "cpu", "command": "test", "output": output}
    return train_from_folder(galaxies, SPEC, "", FOLDER_SETTINGS, **kwargs)[0]


def _worker(rank: int, folder: str) -> None:
    assert get_world_size() == 2
    results = {head: _train(head) for head in ("moments", "flow")}
    if rank == 0:
        torch.save(results, Path(folder) / "results.pt")
    _from_folder(Path(folder) / "galaxies", Path(folder) / "out" / "model.pt")


def test_two_gloo_ranks_train_the_graph_network_of_one_process(tmp_path: Path) -> None:
    for i, catalog in _catalogs().items():
        save_artifact(tmp_path / "galaxies" / f"galaxies_{i:04d}.h5", {"galaxies": catalog})
    reference = {head: _train(head) for head in ("moments", "flow")}  # first: the forked ranks inherit the imports
    one = _from_folder(tmp_path / "galaxies", tmp_path / "one.pt")
    run_ranks(_worker, str(tmp_path))

    results = torch.load(tmp_path / "results.pt", weights_only=False)
    for head, (state, history) in reference.items():
        got_state, got_history = results[head]
        assert got_history["epochs"] == history["epochs"] and got_history["best_epoch"] == history["best_epoch"]
        for key in ("train_loss", "validation_loss"):
            assert got_history[key] == pytest.approx(history[key], rel=1e-5), (head, key)
        for name, want in state.items():
            torch.testing.assert_close(got_state[name], want, atol=1e-6, rtol=1e-5, msg=f"{head} {name}")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model.pt"]  # rank 0 wrote it, nothing else
    ddp_model, meta = load_model(tmp_path / "out" / "model.pt")
    one_model, one_meta = load_model(one)
    assert meta["validation_loss"] == pytest.approx(one_meta["validation_loss"], rel=1e-5)
    for (name, got), want in zip(ddp_model.state_dict().items(), one_model.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5, msg=name)
