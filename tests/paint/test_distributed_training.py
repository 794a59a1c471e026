"""dm2gal training data-parallel: 2 gloo ranks, each on its share of every batch of crops (3 crops: shares 2/1),
give the selected weights, losses and scores of 1 process (the successor's mass term normalised by the occupied
voxels of the whole batch). The networks' batch norms are held in eval mode here: on the CPU each rank
normalises with the statistics of its own share (PyTorch's SyncBatchNorm needs GPUs), which no sharding can make
equal to one process's; what is tested is the sharding and the weighting of the losses."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
import torch
from ddp_helpers import run_ranks

from cosmoseg.nn.distributed import get_world_size
from cosmoseg.paint.network import Dm2Gal, Dm2GalFCN
from cosmoseg.paint.training import TrainConfig, train_dm2gal, train_fcn

from .helpers import FCN_TINY, TINY, synthetic_box


def _without_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every BatchNorm3d held in eval mode (its running statistics, 0 and 1: no batch statistics)."""
    for child in module.modules():
        if isinstance(child, torch.nn.BatchNorm3d):
            child.eval()
            child.train = types.MethodType(lambda self, mode=True: self, child)  # type: ignore[method-assign]
    return module


def _train() -> dict[str, Any]:
    """3 steps of 3 crops of each network, validated at the end (step 3) and once before (step 2)."""
    train, validation = [synthetic_box(3), synthetic_box(4)], synthetic_box(5)
    out = {}
    for mass_weighting in ("none", "inverse_count"):
        torch.manual_seed(0)
        model = _without_batchnorm(Dm2GalFCN(**FCN_TINY))
        config = TrainConfig(steps=3, batch=3, tile=8, lr=1e-2, eval_every=2, selection_draws=1,
                             mass_weighting=mass_weighting)  # fmt: skip
        result = train_fcn(model, train, validation, config, torch.Generator().manual_seed(0))
        out[f"fcn-{mass_weighting}"] = (model.state_dict(), result.history)
    torch.manual_seed(0)
    net = _without_batchnorm(Dm2Gal(input_size=29, **TINY))
    result = train_dm2gal(net, train, validation, TrainConfig(steps=3, batch=3, eval_every=2, lr=1e-2),
                          torch.Generator().manual_seed(0))  # fmt: skip
    out["dm2gal"] = (net.state_dict(), result.history)
    return out


def _worker(rank: int, folder: str) -> None:
    assert get_world_size() == 2
    results = _train()
    if rank == 0:
        torch.save(results, Path(folder) / "results.pt")


def test_two_gloo_ranks_train_dm2gal_as_one_process(tmp_path: Path) -> None:
    reference = _train()  # first: the forked ranks inherit the imports
    run_ranks(_worker, str(tmp_path))
    results = torch.load(tmp_path / "results.pt", weights_only=False)
    for kind, (state, history) in reference.items():
        got_state, got_history = results[kind]
        assert [row[0] for row in got_history] == [row[0] for row in history] == [2, 3]
        for got, want in zip(got_history, history, strict=True):
            assert got[1:] == pytest.approx(want[1:], rel=1e-5), kind
        for name, want in state.items():
            torch.testing.assert_close(got_state[name], want, atol=1e-6, rtol=1e-5, msg=f"{kind} {name}")
