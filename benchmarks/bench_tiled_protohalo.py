"""Time and size a full-box protohalo prediction, whole box in one process against tiles on a Dask LocalCluster.

    python benchmarks/bench_tiled_protohalo.py [--n 256] [--tile 128] [--workers 2] [--threads 1 2] [--seed 5]

The box: the linear fields (δ, φ) of ``sim.ics`` for ``--n``³ cells at the shipped models' cell size (25/32 Mpc/h,
so 200 Mpc/h for n = 256), the project's default cosmology, written once to a temporary artifact file (not timed).
Each configuration then runs in a fresh Python process (so its peak memory is its own): it loads the fields and runs
``predict_protohaloes`` with the shipped pair,

- ``whole``: the whole box in that process, with ``--threads`` torch threads (each value one run);
- ``tiled``: ``tile = --tile``, every crop lattice cut into (n / tile)³ tiles, one task each on a LocalCluster of
  ``--workers`` single-threaded worker processes (what ``[run] executor = "dask"``, ``workers = N`` and the stage's
  ``tile`` do). The cluster's start and the workers' first import of cosmoseg are timed apart, as one-off setup.

Figures per configuration: the prediction's wall time; the peak resident memory (``ru_maxrss``) of the process that
runs the prediction (for ``tiled`` it also hosts the scheduler, holds the whole box and merges the tiles) and of each
worker; for ``tiled``, the time spent in the tile tasks (from the first sent to the last back, every lattice), the
rest being the merge or grouping and the catalog in the predicting process. The labels of every configuration are
checked to equal the first one's, voxel for voxel. Prints one JSON
line per configuration and a table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CELL = 25.0 / 32.0  # Mpc/h, the shipped models' cell size


def peak_rss_gib() -> float:
    """Peak resident memory of this process, GiB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def prepare(n: int, seed: int, path: Path) -> None:
    from cosmoseg.data import Cosmology, save_artifact
    from cosmoseg.sim.ics import initial_conditions

    ics = initial_conditions(Cosmology(), n=n, length=n * CELL, seed=seed)
    save_artifact(path, {"fields": ics.fields})


def configuration(args: argparse.Namespace) -> None:
    """One configuration in this (fresh) process; prints its JSON line and saves its labels."""
    from cosmoseg.data import load_artifact
    from cosmoseg.protohalo.predict import predict_protohaloes

    torch.set_num_threads(args.threads)
    fields = load_artifact(args.fields)["fields"]
    row: dict[str, object] = {"mode": args.mode, "n": fields.n, "threads": args.threads}
    if args.mode == "whole":
        start = time.perf_counter()
        segmentation, halos = predict_protohaloes(fields)
        row["seconds"] = time.perf_counter() - start
    else:
        from cosmoseg.pipeline.executor import executor_config, open_executor

        start = time.perf_counter()
        with open_executor(executor_config("dask", workers=args.workers)) as executor:
            executor.client.run(importlib.import_module, "cosmoseg.protohalo.panoptic")
            row["setup_seconds"] = time.perf_counter() - start
            spent: list[float] = []

            def timed_map(function, items):  # type: ignore[no-untyped-def]
                begin = time.perf_counter()
                yield from executor.map(function, items)
                spent.append(time.perf_counter() - begin)

            start = time.perf_counter()
            segmentation, halos = predict_protohaloes(fields, tile=args.tile, map_tasks=timed_map)
            row["seconds"] = time.perf_counter() - start
            row["tile_tasks_seconds"] = sum(spent)
            workers = executor.client.run(peak_rss_gib)
        row |= {"tile": args.tile, "workers": args.workers, "worker_peak_rss_gib": sorted(workers.values())}
    row |= {"peak_rss_gib": peak_rss_gib(), "instances": segmentation.n_instances, "halos": len(halos)}
    np.save(args.labels, segmentation.labels.numpy())
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--modes", nargs="+", choices=["whole", "tiled"], default=["whole", "tiled"])
    parser.add_argument("--mode", choices=["whole", "tiled"], help=argparse.SUPPRESS)
    parser.add_argument("--fields", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--labels", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        args.threads = args.threads[0]
        configuration(args)
        return
    print(
        f"# {args.n}^3 cells of {CELL} Mpc/h ({args.n * CELL:g} Mpc/h), shipped protohalo pair; {os.cpu_count()} "
        f"CPUs, {platform.processor() or platform.machine()}, torch {torch.__version__}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fields = Path(tmp) / "fields.h5"
        start = time.perf_counter()
        prepare(args.n, args.seed, fields)
        print(f"# fields written in {time.perf_counter() - start:.1f} s (not timed below)", flush=True)
        runs = [("whole", t, []) for t in args.threads] if "whole" in args.modes else []
        if "tiled" in args.modes:
            runs.append(("tiled", 1, ["--tile", str(args.tile), "--workers", str(args.workers)]))
        reference = None
        for mode, threads, extra in runs:
            labels = Path(tmp) / f"labels-{mode}-{threads}.npy"
            command = [sys.executable, __file__, "--mode", mode, "--threads", str(threads), "--fields", str(fields)]
            command += ["--labels", str(labels), *extra]
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
            row = json.loads(out.strip().splitlines()[-1])
            found = np.load(labels)
            reference = found if reference is None else reference
            row["labels_equal_first"] = bool(np.array_equal(found, reference))
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n| configuration | prediction (s) | setup (s) | peak memory, predicting process (GiB) | peak memory per "
          "worker (GiB) | protohaloes | labels = first |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if row["mode"] == "whole":
            name, setup, workers = f"whole box, 1 process, {row['threads']} thread(s)", "–", "–"
        else:
            name = f"tiles of {row['tile']}³, LocalCluster of {row['workers']} workers × 1 thread"
            setup = f"{row['setup_seconds']:.1f}"
            workers = ", ".join(f"{w:.2f}" for w in row["worker_peak_rss_gib"])
        print(
            f"| {name} | {row['seconds']:.1f} | {setup} | {row['peak_rss_gib']:.2f} | {workers} | "
            f"{row['instances']} | {row['labels_equal_first']} |"
        )


if __name__ == "__main__":
    main()
