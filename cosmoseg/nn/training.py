"""A small, generic training loop: gradient clipping by norm, AMP on CUDA, resumable checkpoints.

`Trainer` knows nothing about the task: it takes a model, a ``loss_fn(outputs, targets) -> scalar`` and an
optimizer, and consumes an iterable of ``(inputs, targets)`` batches. Its ``generator`` is the random stream the
caller uses to draw crops / shuffle samples; it is saved in checkpoints with the model, optimizer, scheduler,
grad-scaler and step, so ``k steps + save + resume + k steps`` reproduces a ``2k``-step run (bit for bit on CPU).
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
    ) -> None:
        self.device = torch.device(device)
        if amp is None:
            amp = self.device.type == "cuda"
        if amp and self.device.type != "cuda":
            raise ValueError(f"amp=True needs a CUDA device, got device={self.device}")
        if grad_clip is not None and not (grad_clip > 0 and math.isfinite(grad_clip)):
            raise ValueError(f"grad_clip must be a positive finite number or None, got {grad_clip!r}")
        self.model = model.to(self.device)
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

        ``progress(step, loss)`` is called after each step with the trainer's global step count.
        """
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        self.model.train()
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
                loss = self.loss_fn(self.model(inputs), targets)
            if not torch.isfinite(loss.detach()):
                raise NonFiniteLossError(f"non-finite loss {loss.item()} at step {self.step + 1}")
            self.scaler.scale(loss).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scheduler is not None:
                self.scheduler.step()
            self.step += 1
            value = float(loss.detach())
            losses.append(value)
            if progress is not None:
                progress(self.step, value)
        return losses

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch]) -> float:
        """Mean loss over ``batches`` (weighted by batch size), in eval mode; the training mode is restored."""
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
        if count == 0:
            raise ValueError("evaluate() got no batches")
        return total / count

    def save(self, path: str | os.PathLike[str], metadata: Mapping[str, Any]) -> Path:
        """Checkpoint the model, optimizer, scheduler, scaler, generator and step (atomically)."""
        return save_checkpoint(
            path,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            generator=self.generator,
            step=self.step,
            metadata=metadata,
        )

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
