"""Time the full-box protohalo panoptic prediction (semantic net, instance net, clustering, stitching).

Any pair of ``cosmoseg protohalo train``: the paper's (semantic + instance embedding, persistence clustering per
crop, two lattices stitched) or a centre-offsets one (offsets net, or one panoptic net; ``clustering_s`` is then the
vote grouping over the whole box, with no stitching).

    python benchmarks/bench_protohalo.py [--n 128] [--device cpu|cuda] [--batch-size 4] [--no-amp] [--repeat 1]
    python benchmarks/bench_protohalo.py --train-step [--device cpu|cuda] [--batch-size 2] [--repeat 3]

The box is n^3 cells at the cell size of the models (default: the shipped ones, 50/64 Mpc/h per cell, so
--n 128 is a 100 Mpc/h box and --n 256 a 200 Mpc/h box), with 2LPT initial conditions of the models' training
cosmology (Eisenstein–Hu power spectrum, seed 1), clustered with the instance model's recommended settings
(as ``protohalo.panoptic`` does), after the stage's preprocessing (``ModelPair.prepare_fields``: φ's modes longer
than the training boxes removed; ``preprocess_s``). The time of each phase is measured by wrapping the two
networks and the clustering function with timers (CUDA synchronised); "stitching and the rest" is the total
minus those. Peak memory: the process's peak resident size (CPU) or torch's peak allocated memory (CUDA).
The first call warms up (cuDNN autotuning, allocations); times are the best of --repeat calls after it.

--train-step times one training step of the semantic V-Net instead (the architecture of the semantic checkpoint,
fresh weights): forward and backward of --batch-size random crops of size_in^3, and the optimizer step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import time
from collections.abc import Callable
from typing import Any

import torch

import cosmoseg.protohalo.panoptic as panoptic
from cosmoseg import Cosmology
from cosmoseg.protohalo.pretrained import load_model_pair
from cosmoseg.sim.ics import initial_conditions

PAPER_COSMOLOGY = {"omega_m": 0.307112, "omega_b": 0.048252, "h": 0.6777, "n_s": 0.9611, "sigma_8": 0.8288}


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that wall times measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Accumulated wall time of the calls of a wrapped function (CUDA synchronised before and after)."""

    def __init__(self, fn: Callable[..., Any], device: torch.device) -> None:
        self.fn, self.device, self.seconds, self.calls = fn, device, 0.0, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        synchronize(self.device)
        start = time.perf_counter()
        out = self.fn(*args, **kwargs)
        synchronize(self.device)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def time_train_step(pair_semantic_meta: dict[str, Any], batch: int, device: torch.device, repeat: int) -> dict:
    """Best wall time (s) of forward + backward + Adam step of the semantic V-Net on ``batch`` random crops."""
    from cosmoseg.protohalo.training import make_model

    torch.manual_seed(0)
    model = make_model(pair_semantic_meta).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    size = int(pair_semantic_meta["size_in"])
    x = torch.randn(batch, int(pair_semantic_meta["in_channels"]), size, size, size, device=device)
    times = []
    for _ in range(repeat + 1):  # the first call warms up
        synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        optimizer.step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return {
        "train_step_s": round(min(times[1:] or times), 3),
        "crop": f"{batch} x {size}^3",
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=128, help="cells per side")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--no-amp", action="store_true", help="float32 networks on CUDA")
    parser.add_argument("--keep", type=int, default=None, help="central part of each output crop used")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--semantic", default=None, help="semantic checkpoint (default: shipped)")
    parser.add_argument("--instance", default=None, help="instance checkpoint (default: shipped)")
    parser.add_argument("--symmetries", type=int, default=1, help="test-time augmentation (offsets/panoptic pairs)")
    parser.add_argument("--train-step", action="store_true", help="time a training step of the semantic V-Net")
    args = parser.parse_args()
    device = torch.device(args.device)

    pair = load_model_pair(args.semantic, args.instance, device=device)
    if args.train_step:
        report = time_train_step(pair.semantic_meta, args.batch_size, device, max(args.repeat, 1))
        device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
        print(json.dumps({"device": device_name, "threads": torch.get_num_threads(), **report}, indent=1))
        return
    length = args.n * pair.cell_size
    cosmology = Cosmology(**PAPER_COSMOLOGY, power_backend="eisenstein-hu")
    fields = initial_conditions(cosmology, n=args.n, length=length, seed=1).fields

    runs = []
    # the grouping step of the pair's kind: persistence clustering per crop, or the vote grouping over the box
    grouping_name = "persistence_clustering" if pair.kind == "embedding" else "instances_from_offsets"
    original = getattr(panoptic, grouping_name)
    for attempt in range(args.repeat + 1):
        semantic, instance = Timer(pair.semantic, device), Timer(pair.instance, device)
        clustering = Timer(original, torch.device("cpu"))
        setattr(panoptic, grouping_name, clustering)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            start = time.perf_counter()
            prepared, _ = pair.prepare_fields(fields)  # as protohalo.panoptic: phi's modes beyond the training box
            preprocess = time.perf_counter() - start
            timed = dataclasses.replace(pair, semantic=semantic, instance=instance)
            seg = timed.predict(
                prepared,
                batch_size=args.batch_size,
                device=device,
                amp=not args.no_amp,
                keep=args.keep,
                **({"symmetries": args.symmetries} if pair.kind != "embedding" else {}),
            )
            total = time.perf_counter() - start
        finally:
            setattr(panoptic, grouping_name, original)
        if attempt == 0 and args.repeat > 0:
            continue  # warm-up
        runs.append(
            {
                "total_s": total,
                "preprocess_s": preprocess,
                "semantic_net_s": semantic.seconds,
                "instance_net_s": instance.seconds,
                "clustering_s": clustering.seconds,
                "stitching_and_rest_s": total - preprocess - semantic.seconds - instance.seconds - clustering.seconds,
                "semantic_batches": semantic.calls,
                "instance_batches": instance.calls,
                "clustered_crops": clustering.calls,
                "n_haloes": seg.n_instances,
                "collapsed_fraction": float((seg.labels > 0).float().mean()),
            }
        )
    best = min(runs, key=lambda r: r["total_s"])
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    )
    report = {
        "n": args.n,
        "box_mpc_h": length,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "amp": (not args.no_amp) and device.type == "cuda",
        "crop": f"{pair.size_in}->{pair.size_out}, keep {args.keep or pair.size_out}",
        "kind": pair.kind,
        "clustering": pair.clustering if pair.kind == "embedding" else pair.grouping,
        "symmetries": args.symmetries if pair.kind != "embedding" else 1,
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in best.items()},
        "peak_memory_mib": round(peak, 1),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
