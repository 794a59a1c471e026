"""Data-parallel training under ``torchrun``: the process group, who is rank 0, and each rank's share of a batch.

``torchrun --nproc-per-node N`` starts N copies of a command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` in their environment. :func:`init_from_env` turns that into a
``torch.distributed`` process group (NCCL for a CUDA device, gloo otherwise) and gives the device of this rank;
`cosmoseg.nn.Trainer` then wraps its model in ``DistributedDataParallel`` by itself.

The batches are split, not the data set: at every step the N ranks take consecutive, equal slices of the
*global* batch of size B (:func:`rank_slice`, :func:`shard_batch`), so that with a loss that is a mean over the
samples of a batch, the gradients DDP averages over the ranks equal those of one process over the whole batch
(the role a ``DistributedSampler`` plays for a ``DataLoader``, here for the step-indexed batch streams of the
trainers, which keeps the batches of a resumed run the same as an uninterrupted one).

Without a process group (a plain ``python`` run, or ``torchrun --nproc-per-node 1``) every helper here is the
identity for one process: rank 0 of 1, the whole batch, no communication.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce_sum",
    "barrier",
    "data_parallel",
    "get_rank",
    "get_world_size",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "mean_over_ranks",
    "rank_share",
    "rank_slice",
    "shard_batch",
    "shard_batches",
    "shutdown",
]


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialised (with any world size)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank in the group (0 without a group)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """The number of processes in the group (1 without a group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0, and in a run without a process group: the process that writes files and prints."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank (nothing without a process group)."""
    if is_distributed() and get_world_size() > 1:
        dist.barrier()


def init_from_env(device: str | torch.device = "cpu", *, timeout_s: float = 1800.0) -> torch.device:
    """Join the process group described by torchrun's environment; returns the device this rank should use.

    ``device``: the device asked for (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...). Under torchrun (``WORLD_SIZE`` set)
    a CUDA device becomes ``cuda:LOCAL_RANK`` and the backend is NCCL; any other device uses gloo. Without
    ``WORLD_SIZE`` in the environment nothing is initialised and ``device`` is returned as it is; a group that is
    already initialised is kept. ``timeout_s``: how long a collective may wait for the other ranks (seconds).
    """
    device = torch.device(device)
    if "WORLD_SIZE" not in os.environ:
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not is_distributed():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return device


def shutdown() -> None:
    """Leave and destroy the process group, if one is initialised (the end of a torchrun command)."""
    if is_distributed():
        dist.destroy_process_group()


def rank_slice(batch_size: int, rank: int | None = None, world_size: int | None = None) -> slice:
    """The indices ``[r·b, (r+1)·b)`` of rank ``r``'s share of a global batch of ``batch_size`` (``b = B / N``).

    ``rank`` and ``world_size`` default to the process group's. ValueError when ``batch_size`` is not a multiple
    of the world size: unequal shares would weigh the samples of a step unequally in the averaged gradient.
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if batch_size < 1 or batch_size % world_size:
        raise ValueError(
            f"the batch size {batch_size} must be a positive multiple of the number of processes ({world_size})"
        )
    share = batch_size // world_size
    return slice(rank * share, (rank + 1) * share)


def shard_batch(batch: Any, rank: int | None = None, world_size: int | None = None) -> Any:
    """Rank ``rank``'s slice (:func:`rank_slice`) along dim 0 of every tensor in ``batch``.

    ``batch``: a tensor ``(B, ...)``, or tuples / lists / dicts of them (all with the same ``B``); anything else is
    kept whole. Returns the same structure with tensors ``(B / N, ...)``.
    """
    sizes = {int(t.shape[0]) for t in _tensors(batch) if t.ndim}
    if len(sizes) > 1:
        raise ValueError(f"the tensors of a batch have different batch sizes {sorted(sizes)}")
    if not sizes:
        return batch
    return _take(batch, rank_slice(sizes.pop(), rank, world_size))


def shard_batches(batches: Iterable[Any], rank: int | None = None, world_size: int | None = None) -> Iterator[Any]:
    """Each batch of ``batches`` cut to this rank's share (:func:`shard_batch`), lazily."""
    for batch in batches:
        yield shard_batch(batch, rank, world_size)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """The sum of ``values`` over the ranks (a new tensor; ``values`` itself without a process group).

    Under NCCL the tensor must be on this rank's CUDA device; under gloo on the CPU."""
    if not is_distributed() or get_world_size() == 1:
        return values
    out = values.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def mean_over_ranks(value: float) -> float:
    """The mean of a float over the ranks (``value`` itself without a process group); every rank must call it."""
    if not is_distributed() or get_world_size() == 1:
        return float(value)
    return float(all_reduce_sum(torch.tensor([float(value)], dtype=torch.float64, device=_collective_device()))) / (
        get_world_size()
    )


def rank_share(batch_size: int, rank: int | None = None, world_size: int | None = None) -> tuple[slice, int]:
    """Rank ``r``'s consecutive share of a global batch of any size ``B``, and how many items of it are its own.

    The shares are ``[⌊r·B/N⌋, ⌊(r+1)·B/N⌋)``: they tile the batch and differ in size by at most one (the last,
    ragged batch of an epoch need not be a multiple of N). A trainer whose loss is a mean over the items scales this
    rank's mean by ``N·b_r / B`` (``b_r`` the count returned), so that the gradient DDP averages over the ranks is the
    one of the mean over the whole batch. A rank left without an item (``B < N``) gets ``slice(0, 1)`` and a count
    of 0: it runs item 0 to take part in the gradient all-reduce, and must weigh it 0.
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if batch_size < 1:
        raise ValueError(f"the batch size must be positive, got {batch_size}")
    start, stop = rank * batch_size // world_size, (rank + 1) * batch_size // world_size
    return (slice(start, stop), stop - start) if stop > start else (slice(0, 1), 0)


def data_parallel(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` under a process group of more than one rank, else itself.

    Call the wrapper for the forward passes of training (its gradients are averaged over the ranks at ``backward``);
    the bare ``module`` keeps the weights (checkpoints, evaluation). Parameters on a CUDA device are pinned to it."""
    if not is_distributed() or get_world_size() == 1:
        return module
    device = next(module.parameters()).device
    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def _collective_device() -> torch.device:
    """Where a collective's tensor must live: this rank's CUDA device under NCCL, the CPU under gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _tensors(x: Any) -> Iterator[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, list | tuple):
        for v in x:
            yield from _tensors(v)
    elif isinstance(x, Mapping):
        for v in x.values():
            yield from _tensors(v)


def _take(x: Any, index: slice) -> Any:
    if isinstance(x, torch.Tensor):
        return x[index] if x.ndim else x
    if isinstance(x, list | tuple):
        return type(x)(_take(v, index) for v in x)
    if isinstance(x, Mapping):
        return {k: _take(v, index) for k, v in x.items()}
    return x
