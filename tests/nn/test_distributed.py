"""Data-parallel training: 2 gloo processes over shares of a global batch equal 1 process over the whole batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ddp_helpers import run_ranks
from torch import nn

from cosmoseg.nn import Trainer, load_checkpoint
from cosmoseg.nn.distributed import (
    get_rank,
    get_world_size,
    init_from_env,
    is_distributed,
    is_main_process,
    rank_slice,
    shard_batch,
    shard_batches,
)

GLOBAL_BATCH = 4
STEPS = 3


def _model() -> nn.Module:
    """A tiny conv net without batch norm: (B, 2, 6³) -> (B, 1, 6³)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.Tanh(), nn.Conv3d(4, 1, 1))


def _trainer(model: nn.Module) -> Trainer:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return Trainer(model, nn.functional.mse_loss, optimizer, device="cpu", grad_clip=0.5, scheduler=scheduler)


def _global_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``STEPS`` fixed global batches of ``GLOBAL_BATCH`` samples."""
    g = torch.Generator().manual_seed(7)
    out = []
    for _ in range(STEPS):
        x = torch.randn(GLOBAL_BATCH, 2, 6, 6, 6, generator=g)
        out.append((x, x[:, :1] * 1.5 - x[:, 1:] + 0.1 * torch.randn(GLOBAL_BATCH, 1, 6, 6, 6, generator=g)))
    return out


def _worker(rank: int, folder: str) -> None:
    """One rank as torchrun would start it: 2 steps, a rank-0 checkpoint, a fresh trainer resumed, 1 more step."""
    world_size = 2
    assert get_rank() == rank and get_world_size() == world_size
    batches = shard_batches(_global_batches())
    trainer = _trainer(_model())
    assert isinstance(trainer.network, nn.parallel.DistributedDataParallel)
    losses = trainer.train_steps(batches, 2)
    half = trainer.save(Path(folder) / "half.pt", {"task": "test"})
    resumed = _trainer(_model())
    resumed.resume(half, expect={"task": "test"})
    losses += resumed.train_steps(batches, 1)
    val = resumed.evaluate([shard_batch(b) for b in _global_batches()])
    resumed.save(Path(folder) / "ddp.pt", {"task": "test", "losses": losses, "validation": val})


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_over_the_global_batch(tmp_path: Path) -> None:
    run_ranks(_worker, str(tmp_path), world_size=2, start_method="spawn")  # spawn: as torchrun starts them

    reference = _trainer(_model())
    ref_losses = reference.train_steps(iter(_global_batches()), STEPS)
    ref_val = reference.evaluate(_global_batches())

    ddp = _model()
    step, meta = load_checkpoint(tmp_path / "ddp.pt", model=ddp, expect={"task": "test"})
    assert step == STEPS
    for (name, got), want in zip(ddp.state_dict().items(), reference.model.state_dict().values(), strict=True):
        assert torch.allclose(got, want, atol=1e-6), name
    assert not torch.equal(ddp.state_dict()["0.weight"], _model().state_dict()["0.weight"])  # it did train
    assert meta["losses"] == pytest.approx(ref_losses, rel=1e-5)
    assert meta["validation"] == pytest.approx(ref_val, rel=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.pt", "half.pt"]  # no stray temporary files


def test_without_a_process_group_the_trainer_is_the_plain_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env("cpu") == torch.device("cpu")  # not under torchrun: no group is made
    assert not is_distributed() and get_rank() == 0 and get_world_size() == 1 and is_main_process()
    model = _model()
    trainer = _trainer(model)
    assert trainer.network is model and trainer.model is model
    batch = _global_batches()[0]
    assert torch.equal(shard_batch(batch)[0], batch[0]) and torch.equal(shard_batch(batch)[1], batch[1])
    assert not isinstance(trainer.network, nn.parallel.DistributedDataParallel)


def test_rank_shares_tile_the_global_batch() -> None:
    x = torch.arange(12).view(6, 2)
    batch = (x, {"y": x * 2, "tag": "a"}, torch.tensor(3.0))
    shares = [shard_batch(batch, rank=r, world_size=3) for r in range(3)]
    assert torch.equal(torch.cat([s[0] for s in shares]), x)
    assert torch.equal(shares[1][1]["y"], x[2:4] * 2) and shares[1][1]["tag"] == "a"
    assert float(shares[2][2]) == 3.0
    assert rank_slice(8, rank=1, world_size=2) == slice(4, 8)
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        rank_slice(5, rank=0, world_size=2)
    with pytest.raises(ValueError, match="different batch sizes"):
        shard_batch((torch.zeros(4), torch.zeros(2)), rank=0, world_size=2)
