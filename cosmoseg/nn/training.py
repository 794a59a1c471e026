"""A small, generic training loop: gradient clipping by norm, AMP on CUDA, resumable checkpoints.

`Trainer` knows nothing about the task: it takes a model, a ``loss_fn(outputs, targets) -> scalar`` and an
optimizer, and consumes an iterable of ``(inputs, targets)`` batches. Its ``generator`` is the random stream the
caller uses to draw crops / shuffle samples; it is saved in checkpoints with the model, optimizer, scheduler,
grad-scaler and step, so ``k steps + save + resume + k steps`` reproduces a ``2k``-step run (bit for bit on CPU).

Under ``torchrun`` (a ``torch.distributed`` process group initialised, e.g. by
`cosmoseg.nn.distributed.init_from_env`) the same `Trainer` trains data-parallel: it wraps the model in
``DistributedDataParallel`` (gradients averaged over the ranks), each rank feeds it its share of every global batch
(`cosmoseg.nn.distributed.shard_batches`), the logged losses and `evaluate` are averaged over the ranks, and
`save` writes on rank 0 only while the other ranks wait. ``trainer.model`` stays the bare module, so checkpoints
have the same keys as a one-process run and load anywhere. Without a process group nothing of this happens.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cosmoseg.errors import CosmosegError
from cosmoseg.nn.checkpoints import load_checkpoint, save_checkpoint
from cosmoseg.nn.distributed import all_reduce_sum, barrier, get_world_size, is_distributed, is_main_process

__all__ = ["NonFiniteLossError", "Trainer"]


class NonFiniteLossError(CosmosegError, FloatingPointError):
    """The loss of a training step is NaN or infinite (the run diverged). A ``FloatingPointError``, and a cosmoseg
    error, so that the training commands report it as one ``error:`` line."""


Batch = tuple[Any, Any]


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, list | tuple):
        return type(x)(_to(v, device) for v in x)
    if isinstance(x, Mapping):
        return {k: _to(v, device) for k, v in x.items()}
    return x


def _batch_size(x: Any) -> int:
    if isinstance(x, torch.Tensor):
        return int(x.shape[0]) if x.ndim else 1
    if isinstance(x, list | tuple) and x:
        return _batch_size(x[0])
    if isinstance(x, Mapping) and x:
        return _batch_size(next(iter(x.values())))
    return 1


class Trainer:
    """Train ``model`` with ``loss_fn`` and ``optimizer`` on ``device``.

    - ``grad_clip``: clip the global gradient norm to this value (None: no clipping).
    - ``amp``: mixed precision (``torch.autocast`` + ``GradScaler``); default True on CUDA, False elsewhere;
      asking for it on another device is an error.
    - ``generator``: the random stream for shuffling / crop drawing, saved in checkpoints (a CPU generator seeded
      with 0 when not given).
    - ``scheduler``: an optional LR scheduler, stepped once per training step.
    - ``sync_batchnorm``: under a process group, turn the model's BatchNorm layers into ``SyncBatchNorm`` (batch
      statistics over the global batch, as one process would compute them). Default: True on CUDA, False
      elsewhere (PyTorch's SyncBatchNorm runs on GPUs only); without it each rank normalises with the statistics
      of its own share and DDP copies rank 0's running statistics to the others at every forward pass.

    With a process group the model is wrapped in ``DistributedDataParallel`` (``trainer.network``; ``trainer.model``
    stays the bare module). The gradients are averaged over the ranks, so a loss that is a mean over the samples
    of a batch gives the same step as one process over the whole global batch (the ranks' shares must be equal).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        *,
        device: str | torch.device = "cpu",
        grad_clip: float | None = None,
        amp: bool | None = None,
        generator: torch.Generator | None = None,
        scheduler: Any | None = None,
        sync_batchnorm: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        if amp is None:
            amp = self.device.type == "cuda"
        if amp and self.device.type != "cuda":
            raise ValueError(f"amp=True needs a CUDA device, got device={self.device}")
        if grad_clip is not None and not (grad_clip > 0 and math.isfinite(grad_clip)):
            raise ValueError(f"grad_clip must be a positive finite number or None, got {grad_clip!r}")
        model = model.to(self.device)
        self.network: nn.Module = model
        if is_distributed():
            if sync_batchnorm is None:
                sync_batchnorm = self.device.type == "cuda"
            if sync_batchnorm:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same Parameter objects: optimizer unchanged
            device_ids = [self.device.index] if self.device.type == "cuda" and self.device.index is not None else None
            self.network = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.grad_clip = grad_clip
        self.amp = bool(amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.step = 0

    def _autocast(self) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, enabled=self.amp)

    def train_steps(
        self,
        batches: Iterable[Batch],
        n_steps: int,
        progress: Callable[[int, float], None] | None = None,
    ) -> list[float]:
        """Run ``n_steps`` optimizer steps on the next batches; returns the loss of each step.

        ``progress(step, loss)`` is called after each step with the trainer's global step count. Under a process
        group the batches are this rank's shares and the losses returned are the means over the ranks.
        """
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        self.network.train()
        losses: list[float] = []
        it = iter(batches)
        for i in range(n_steps):
            try:
                inputs, targets = next(it)
            except StopIteration:
                raise ValueError(f"the batches ran out after {i} of {n_steps} steps") from None
            inputs, targets = _to(inputs, self.device), _to(targets, self.device)
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                loss = self.loss_fn(self.network(inputs), targets)
            value = self._mean_over_ranks(loss)  # every rank sees the same value, so all stop together
            if not math.isfinite(value):
                raise NonFiniteLossError(f"non-finite loss {value} at step {self.step + 1}")
            self.scaler.scale(loss).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scheduler is not None:
                self.scheduler.step()
            self.step += 1
            losses.append(value)
            if progress is not None:
                progress(self.step, value)
        return losses

    def _mean_over_ranks(self, loss: torch.Tensor) -> float:
        """``loss`` (a scalar) as a float, averaged over the ranks under a process group."""
        if not is_distributed():
            return float(loss.detach())
        return float(all_reduce_sum(loss.detach().float().reshape(1))) / get_world_size()

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch]) -> float:
        """Mean loss over ``batches`` (weighted by batch size), in eval mode; the training mode is restored.

        Under a process group each rank evaluates its own batches and the result is the weighted mean over all
        of them (the same on every rank)."""
        was_training = self.model.training
        self.model.eval()
        total, count = 0.0, 0
        try:
            for inputs, targets in batches:
                inputs, targets = _to(inputs, self.device), _to(targets, self.device)
                with self._autocast():
                    loss = self.loss_fn(self.model(inputs), targets)
                n = _batch_size(inputs)
                total += float(loss) * n
                count += n
        finally:
            self.model.train(was_training)
        if is_distributed():
            sums = all_reduce_sum(torch.tensor([total, count], dtype=torch.float64, device=self.device))
            total, count = float(sums[0]), int(sums[1])
        if count == 0:
            raise ValueError("evaluate() got no batches")
        return total / count

    def save(self, path: str | os.PathLike[str], metadata: Mapping[str, Any]) -> Path:
        """Checkpoint the model, optimizer, scheduler, scaler, generator and step (atomically).

        Under a process group every rank calls it: rank 0 writes and the others wait until the file is whole."""
        if not is_main_process():
            barrier()
            return Path(path)
        written = save_checkpoint(
            path,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            generator=self.generator,
            step=self.step,
            metadata=metadata,
        )
        barrier()
        return written

    def resume(self, path: str | os.PathLike[str], expect: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Restore everything `save` wrote, after checking ``expect`` against the metadata; returns the metadata."""
        self.step, metadata = load_checkpoint(
            path,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            generator=self.generator,
            expect=expect,
            map_location=self.device,
        )
        return metadata
