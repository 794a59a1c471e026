"""The generic training loop and its checkpoints: learning, resume determinism, weights_only, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cosmoseg.errors import ArtifactError, CosmosegError
from cosmoseg.nn import NonFiniteLossError, Trainer, export_weights, load_checkpoint, read_checkpoint, save_checkpoint

META = {"in_channels": 2, "crop_size": 8, "grid_n": 16, "task": "regression", "levels": [1, 2]}


def _model(seed: int = 0, in_channels: int = 2, out_channels: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Conv3d(in_channels, out_channels, kernel_size=1)


def _batches(generator: torch.Generator, batch: int = 4, n: int = 8):
    """Endless random 8³ inputs and their image under a fixed linear map, drawn from the trainer's generator."""
    weight = torch.tensor([1.5, -0.5]).view(1, 2, 1, 1, 1)
    while True:
        x = torch.randn(batch, 2, n, n, n, generator=generator)
        yield x, (x * weight).sum(1, keepdim=True) + 0.25


def _trainer(seed: int = 0, **kwargs) -> Trainer:
    model = _model(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.9)
    return Trainer(
        model,
        nn.functional.mse_loss,
        opt,
        device="cpu",
        grad_clip=1.0,
        generator=torch.Generator().manual_seed(seed + 100),
        scheduler=sched,
        **kwargs,
    )


def test_loss_decreases_and_progress_is_reported():
    trainer = _trainer()
    seen = []
    losses = trainer.train_steps(_batches(trainer.generator), 60, progress=lambda s, v: seen.append(s))
    assert len(losses) == 60 and seen == list(range(1, 61)) and trainer.step == 60
    assert sum(losses[-5:]) / 5 < 0.05 * sum(losses[:5]) / 5
    val = trainer.evaluate(next(_batches(torch.Generator().manual_seed(9))) for _ in range(2))
    assert val < 0.05 * losses[0]
    assert trainer.model.training


def test_gradient_clipping_bounds_the_update():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.full((1, 2, 2, 2, 2), 100.0)
    Trainer(model, nn.functional.mse_loss, opt, grad_clip=0.1).train_steps([(x, torch.zeros(1, 1, 2, 2, 2))], 1)
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    assert step.norm() == pytest.approx(0.1, rel=1e-4)


def test_resume_reproduces_an_uninterrupted_run(tmp_path: Path):
    k = 7
    full = _trainer()
    full_losses = full.train_steps(_batches(full.generator), 2 * k)

    first = _trainer()
    losses = first.train_steps(_batches(first.generator), k)
    first.save(tmp_path / "ckpt.pt", META)
    # a fresh trainer with other initial weights and another generator state: resume must restore all of it
    second = _trainer(seed=5)
    assert second.resume(tmp_path / "ckpt.pt", expect={"in_channels": 2, "grid_n": 16}) == META
    assert second.step == k
    assert second.optimizer.param_groups[0]["lr"] == first.optimizer.param_groups[0]["lr"]
    losses += second.train_steps(_batches(second.generator), k)

    assert losses == full_losses
    for a, b in zip(full.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_loads_with_weights_only_and_holds_plain_types(tmp_path: Path):
    trainer = _trainer()
    trainer.train_steps(_batches(trainer.generator), 2)
    path = trainer.save(tmp_path / "ckpt.pt", META)
    payload = torch.load(path, weights_only=True)
    assert payload["step"] == 2 and payload["metadata"] == META
    assert set(payload["model"]) == {"weight", "bias"}
    step, meta = load_checkpoint(path, model=_model(3))
    assert (step, meta) == (2, META)


def test_exported_weights_drop_the_training_state_and_load_the_same_model(tmp_path: Path):
    trainer = _trainer()
    trainer.train_steps(_batches(trainer.generator), 3)
    path = trainer.save(tmp_path / "ckpt.pt", META)
    out = export_weights(path, tmp_path / "weights.pt", metadata={"note": "shipped"})
    payload = read_checkpoint(out)
    assert payload["optimizer"] is None and payload["scheduler"] is None and payload["generator"] is None
    assert payload["metadata"] == {**META, "note": "shipped"} and payload["step"] == 3
    a, b = _model(5), _model(6)
    load_checkpoint(path, model=a)
    load_checkpoint(out, model=b)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with pytest.raises(ArtifactError, match="optimizer"):
        Trainer(_model(), nn.functional.mse_loss, torch.optim.Adam(_model().parameters()), device="cpu").resume(out)


def test_metadata_must_be_plain(tmp_path: Path):
    with pytest.raises(TypeError, match=r"metadata\['where'\] is a PosixPath"):
        save_checkpoint(tmp_path / "c.pt", model=_model(), step=0, metadata={"where": tmp_path})
    assert list(tmp_path.iterdir()) == []


def test_mismatched_metadata_names_every_key(tmp_path: Path):
    path = save_checkpoint(tmp_path / "c.pt", model=_model(), step=3, metadata=META)
    model = _model(1)
    before = model.weight.detach().clone()
    with pytest.raises(ArtifactError) as err:
        load_checkpoint(path, model=model, expect={"in_channels": 5, "grid_n": 128, "crop_size": 8, "norm": "batch"})
    problems = err.value.problems
    assert len(problems) == 3
    assert "'in_channels' is 2 in the checkpoint, expected 5" in problems[0]
    assert "'grid_n' is 16 in the checkpoint, expected 128" in problems[1]
    assert "'norm' is missing" in problems[2]
    assert all(str(path) in p for p in problems)
    assert torch.equal(model.weight, before)  # nothing loaded


def test_state_dict_of_another_architecture_names_the_keys(tmp_path: Path):
    path = save_checkpoint(tmp_path / "c.pt", model=_model(), step=0, metadata={})
    with pytest.raises(ArtifactError) as err:
        load_checkpoint(path, model=_model(in_channels=5))
    assert "'weight' has shape (1, 2, 1, 1, 1) in the checkpoint, model has (1, 5, 1, 1, 1)" in str(err.value)
    other = nn.Sequential(nn.Conv3d(2, 1, 1))
    with pytest.raises(ArtifactError) as err:
        load_checkpoint(path, model=other)
    text = str(err.value)
    assert "'0.weight' missing" in text and "unexpected key 'bias'" in text and "unexpected key 'weight'" in text


def test_missing_truncated_and_foreign_files(tmp_path: Path):
    with pytest.raises(ArtifactError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt")
    path = save_checkpoint(tmp_path / "c.pt", model=_model(), step=0, metadata=META)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="cannot be read as a checkpoint"):
        load_checkpoint(path, model=_model())
    torch.save(_model().state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ArtifactError, match="not a cosmoseg checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")


def test_optimizer_state_is_required_when_asked_for(tmp_path: Path):
    model = _model()
    path = save_checkpoint(tmp_path / "c.pt", model=model, step=0, metadata={})
    with pytest.raises(ArtifactError, match="no optimizer state"):
        load_checkpoint(path, model=model, optimizer=torch.optim.Adam(model.parameters()))


def test_failed_save_keeps_the_old_checkpoint_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = save_checkpoint(tmp_path / "c.pt", model=_model(), step=1, metadata=META)
    old = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model=_model(2), step=2, metadata=META)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert load_checkpoint(path)[0] == 1


def test_amp_on_cpu_is_refused():
    model = _model()
    with pytest.raises(ValueError, match="amp=True needs a CUDA device"):
        Trainer(model, nn.functional.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1), amp=True)
    assert Trainer(model, nn.functional.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1)).amp is False


@pytest.mark.gpu
def test_amp_training_and_resume_on_gpu(tmp_path: Path):
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    trainer = Trainer(model, nn.functional.mse_loss, opt, device="cuda", grad_clip=1.0)
    assert trainer.amp and trainer.scaler.is_enabled()
    losses = trainer.train_steps(_batches(trainer.generator), 60)
    assert sum(losses[-5:]) < 0.1 * sum(losses[:5])
    trainer.save(tmp_path / "c.pt", META)
    other = _model(4)
    resumed = Trainer(other, nn.functional.mse_loss, torch.optim.Adam(other.parameters(), lr=0.05), device="cuda")
    resumed.resume(tmp_path / "c.pt", expect=META)
    assert resumed.step == 60 and resumed.scaler.get_scale() == trainer.scaler.get_scale()
    assert torch.equal(resumed.model.weight, trainer.model.weight)


def test_a_non_finite_loss_stops_training_with_a_cosmoseg_error():
    """A FloatingPointError, as before, that the training commands report as an error line (a CosmosegError)."""
    trainer = _trainer()
    trainer.loss_fn = lambda out, target: (out - target).square().mean() * float("nan")
    with pytest.raises(NonFiniteLossError, match="non-finite loss nan at step 1") as info:
        trainer.train_steps(_batches(trainer.generator), 3)
    assert isinstance(info.value, FloatingPointError) and isinstance(info.value, CosmosegError)
    assert trainer.step == 0
