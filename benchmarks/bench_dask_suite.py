"""Time a training suite on a Dask LocalCluster of 1, 2, ... workers against one process (issue #23).

    OMP_NUM_THREADS=1 python benchmarks/bench_dask_suite.py [--suite configs/suites/tiny.toml] [--boxes 16]
        [--workers 1 2] [--local]

The suite file (default: the tiny suite, 32^3 particles in 64 Mpc/h, 10 PM steps, FoF at z = 1 and 0, CAMB's
P(k)) is run with ``--boxes`` boxes, into a fresh temporary folder per configuration: ``--local`` in this process
(one torch thread), then on a ``LocalCluster`` of N single-threaded worker processes for each N of ``--workers``
(what ``cosmoseg simulate SUITE --executor dask --workers N`` does). The cluster's start is timed apart from the
suite; the suite's time includes the workers' first imports. Every configuration's boxes are checked to equal the
first configuration's bit for bit. Prints one JSON line per configuration and a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from cosmoseg.data import load_artifact
from cosmoseg.pipeline.executor import executor_config, local_map, open_executor
from cosmoseg.sim.suites import SuiteConfig, load_suite, simulate_suite

ROOT = Path(__file__).resolve().parents[1]


def same_boxes(first: list[Path], second: list[Path]) -> bool:
    """Every object of every box file equal, tensor by tensor."""
    for a, b in zip(first, second, strict=True):
        x, y = load_artifact(a), load_artifact(b)
        if set(x) != set(y):
            return False
        for name, obj in x.items():
            tx, ty = obj._tensors(), y[name]._tensors()
            if set(tx) != set(ty) or not all(torch.equal(t, ty[k]) for k, t in tx.items()):
                return False
    return True


def run(config: SuiteConfig, workers: int, folder: Path) -> tuple[dict[str, object], list[Path]]:
    """One configuration: ``workers`` = 0 for this process; its figures and box files."""
    if workers == 0:
        start = time.perf_counter()
        paths = simulate_suite(config, folder, map_tasks=local_map)
        seconds = time.perf_counter() - start
        return {"executor": "local (1 thread)", "workers": 0, "cluster_start_s": 0.0, "suite_s": seconds}, paths
    start = time.perf_counter()
    with open_executor(executor_config("dask", workers=workers)) as executor:
        started = time.perf_counter() - start
        start = time.perf_counter()
        paths = simulate_suite(config, folder, map_tasks=executor.map)
        seconds = time.perf_counter() - start
    figures = {"executor": f"dask LocalCluster, {workers} worker(s)", "workers": workers}
    return figures | {"cluster_start_s": started, "suite_s": seconds}, paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=ROOT / "configs" / "suites" / "tiny.toml")
    parser.add_argument("--boxes", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--local", action="store_true", help="also time the suite in this process")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_suite(args.suite)
    config = dataclasses.replace(config, suite=dataclasses.replace(config.suite, n_boxes=args.boxes))
    print(
        f"# {args.suite.name}: {args.boxes} boxes of {config.grid.n}^3 particles, {config.grid.box} Mpc/h, "
        f"{config.nbody.steps} PM steps; {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for workers in ([0] if args.local else []) + args.workers:
            figures, paths = run(config, workers, Path(tmp) / f"w{workers}")
            figures["per_box_s"] = figures["suite_s"] / args.boxes  # type: ignore[operator]
            figures["same_boxes"] = True if reference is None else same_boxes(reference, paths)
            reference = reference or paths
            print(json.dumps(figures))
            rows.append(figures)
    base = next((r["suite_s"] for r in rows if r["workers"] == 1), rows[0]["suite_s"])
    print("\n| executor | cluster start | suite | per box | speed-up vs 1 worker | boxes equal |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['executor']} | {r['cluster_start_s']:.1f} s | {r['suite_s']:.1f} s | {r['per_box_s']:.2f} s | "
            f"{base / r['suite_s']:.2f}x | {r['same_boxes']} |"  # type: ignore[operator]
        )


if __name__ == "__main__":
    main()
