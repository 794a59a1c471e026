"""Running a function on N gloo ranks as ``torchrun`` would start them, for the data-parallel training tests.

``run_ranks(fn, *args)`` starts ``world_size`` processes with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` set, joins them in a gloo process group (`cosmoseg.nn.distributed.init_from_env`)
on one torch thread each, calls ``fn(rank, *args)`` and destroys the group; an exception in a rank fails the caller.
The processes are forked by default (no re-import of torch: about a second instead of several); ``fn`` and ``args``
must be picklable for ``start_method="spawn"``. Results come back through files the ranks write.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.multiprocessing as mp

from cosmoseg.nn.distributed import init_from_env, shutdown

__all__ = ["free_port", "run_ranks"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the rendezvous of the group)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(rank: int, world_size: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    init_from_env("cpu", timeout_s=120)
    try:
        fn(rank, *args)
    finally:
        shutdown()


def run_ranks(fn: Callable[..., Any], *args: Any, world_size: int = 2, start_method: str = "fork") -> None:
    """``fn(rank, *args)`` on ``world_size`` gloo ranks (see the module docstring); returns when all have ended."""
    mp.start_processes(
        _rank_main, args=(world_size, free_port(), fn, args), nprocs=world_size, join=True, start_method=start_method
    )
