"""The network samplers fit data-parallel: 2 gloo ranks, each on its share of every mini-batch (ragged ones
included), give the fit of 1 process over the whole mini-batches; only rank 0 writes the model file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ddp_helpers import run_ranks

from cosmoseg.galaxies.commands import _save_on_rank_zero
from cosmoseg.galaxies.samplers.base import load_sampler, sampler_class
from cosmoseg.nn.distributed import get_world_size

# 37 rows in mini-batches of 16: 16, 16, 5, split 8/8 and 3/2 over two ranks
HYPER: dict[str, dict[str, Any]] = {
    "flow": {"layers": 2, "hidden_features": 8, "bins": 4, "epochs": 2, "batch_size": 16, "lr": 1e-2},
    "gauss": {"hidden": 8, "layers": 1, "epochs": 2, "batch_size": 16, "lr": 1e-2},
    "regression": {"hidden": 8, "layers": 1, "epochs": 2, "batch_size": 16, "lr": 1e-2, "imbalance": "inverse_density"},
    "hival": {"n_classes": 4, "k_neighbors": 4, "hidden_features": 8, "hidden_layers": 1, "epochs": 2,
              "batch_size": 16, "lr": 1e-2},
}  # fmt: skip


def _rows() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(37, 2, generator=g)
    y = torch.stack([x[:, 0] + 0.3 * torch.randn(37, generator=g), x[:, 1] * x[:, 0]], 1)
    return x, y


def _fits() -> dict[str, Any]:
    x, y = _rows()
    losses: dict[str, list[float]] = {}
    out = {}
    for method, hyper in HYPER.items():
        sampler = sampler_class(method)(["a", "b"], ["c", "d"], **hyper)
        progress = lambda epoch, loss, m=method: losses.setdefault(m, []).append(loss)  # noqa: E731
        out[method] = sampler.fit(x, y, generator=torch.Generator().manual_seed(1), progress=progress)
    return {"samplers": out, "losses": losses}


def _state(sampler: Any) -> dict[str, torch.Tensor]:
    """The learned weights of a sampler as flat tensors."""
    flat: dict[str, torch.Tensor] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            flat[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}", v)

    walk("", sampler.state_dict())
    return flat


def _worker(rank: int, folder: str) -> None:
    assert get_world_size() == 2
    fits = _fits()
    for method, sampler in fits["samplers"].items():
        path = Path(folder) / f"{method}.pt"
        _save_on_rank_zero(lambda s=sampler, p=path: s.save(p), path)
    if rank == 0:
        torch.save(fits["losses"], Path(folder) / "losses.pt")


def test_two_gloo_ranks_fit_the_samplers_of_one_process(tmp_path: Path) -> None:
    reference = _fits()  # first: the forked ranks inherit the lazily imported modules
    run_ranks(_worker, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{m}.pt" for m in HYPER] + ["losses.pt"])
    losses = torch.load(tmp_path / "losses.pt")
    for method, want_losses in reference["losses"].items():
        assert losses[method] == pytest.approx(want_losses, rel=1e-5), method
    for method, want in reference["samplers"].items():
        got = load_sampler(tmp_path / f"{method}.pt")
        a, b = _state(got), _state(want)
        assert a.keys() == b.keys()
        for name in b:
            torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5, msg=f"{method} {name}")
