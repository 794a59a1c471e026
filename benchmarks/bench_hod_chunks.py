"""Time and size an HOD mock of a very large halo catalog in chunks: a Dask LocalCluster against one process.

    python benchmarks/bench_hod_chunks.py [--n 100000000] [--chunk-rows 10000000] [--workers 2] [--folder DIR]

The catalog: ``--n`` haloes, the stand-in of ``bench_hod.py`` (dn/dlnM ~ M^-0.9 on [1e11, 1e15] Msun/h, uniform in
a box at the same number density as its 10⁶ haloes in 1000 Mpc/h, Gaussian velocities of 300 km/s), columns
``pos``, ``vel`` (float32) and ``mass`` (float64), written block by block to ``--folder``/halos.h5 (one-off, timed
apart; a file of that size already there is reused). Concentrations and r200 are computed per chunk by the HOD.
HOD: Zheng et al. (2007) M_r < -21, NFW satellites with velocities, seed 1.

Each configuration runs ``populate_file`` (what ``cosmoseg galaxies hod HALOS.h5 --chunk-rows N`` does) in a fresh
Python process, so that its peak memory is its own: one task per chunk of ``--chunk-rows`` haloes, each reading its
rows from the file and writing its galaxies to ``galaxies_<i>.h5``,

- ``dask``: on a LocalCluster of ``--workers`` single-threaded worker processes (its start and the workers' first
  import of cosmoseg timed apart, as one-off setup);
- ``local``: the same chunks one after another in that process, one torch thread.

Figures: wall time, galaxies, peak resident memory (``ru_maxrss``) of the calling process and of each worker. The
chunk files of the two configurations are compared, galaxy for galaxy. Prints a JSON line per configuration and a
table.
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
import time
from pathlib import Path

import h5py
import numpy as np
import torch

DENSITY = 1e6 / 1000.0**3  # haloes per (Mpc/h)^3, as bench_hod.py's 10^6 haloes in 1000 Mpc/h
BLOCK = 10_000_000  # haloes drawn and written at a time


def peak_rss_gib() -> float:
    """Peak resident memory of this process, GiB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def write_catalog(path: Path, n: int, seed: int) -> float:
    """The stand-in catalog of ``n`` haloes written block by block as a HaloCatalog artifact; its box side."""
    from cosmoseg.data import Box, HaloCatalog, save_artifact

    length = (n / DENSITY) ** (1.0 / 3.0)
    rng = np.random.default_rng(seed)
    slope, lo, hi = -0.9, 1e11, 1e15

    def block(size: int) -> dict[str, torch.Tensor]:
        mass = (lo**slope + rng.random(size) * (hi**slope - lo**slope)) ** (1.0 / slope)
        return {
            "pos": torch.from_numpy((rng.random((size, 3)) * length).astype(np.float32)),
            "vel": torch.from_numpy(rng.normal(0.0, 300.0, (size, 3)).astype(np.float32)),
            "mass": torch.from_numpy(mass),
        }

    # the layout and attributes come from a one-row artifact; the columns are then grown to n rows block by block
    first = block(min(BLOCK, n))
    save_artifact(path, {"halos": HaloCatalog(columns=first, box=Box(length=length))})
    with h5py.File(path, "r+") as f:
        columns = f["halos"]["columns"]
        for name in first:
            data, attrs = columns[name][()], dict(columns[name].attrs)
            del columns[name]
            columns.create_dataset(name, data=data, maxshape=(None, *data.shape[1:]), chunks=True)
            columns[name].attrs.update(attrs)
        done = len(first["mass"])
        while done < n:
            size = min(BLOCK, n - done)
            for name, values in block(size).items():
                columns[name].resize(done + size, axis=0)
                columns[name][done : done + size] = values.numpy()
            done += size
    return length


def configuration(args: argparse.Namespace) -> None:
    """One configuration in this (fresh) process; prints its JSON line."""
    from cosmoseg.galaxies.hod import HODParams
    from cosmoseg.galaxies.hod_chunks import populate_file
    from cosmoseg.pipeline.executor import executor_config, local_map, open_executor

    torch.set_num_threads(1)
    row: dict[str, object] = {"mode": args.mode, "chunk_rows": args.chunk_rows}
    output = args.folder / f"mock-{args.mode}"
    call = {"chunk_rows": args.chunk_rows}
    if args.mode == "local":
        start = time.perf_counter()
        paths = populate_file(args.folder / "halos.h5", output, HODParams(), 1, map_tasks=local_map, **call)
        row["seconds"] = time.perf_counter() - start
    else:
        start = time.perf_counter()
        with open_executor(executor_config("dask", workers=args.workers)) as executor:
            executor.client.run(importlib.import_module, "cosmoseg.galaxies.hod_chunks")
            row["setup_seconds"] = time.perf_counter() - start
            start = time.perf_counter()
            paths = populate_file(args.folder / "halos.h5", output, HODParams(), 1, map_tasks=executor.map, **call)
            row["seconds"] = time.perf_counter() - start
            row["worker_peak_rss_gib"] = sorted(executor.client.run(peak_rss_gib).values())
        row["workers"] = args.workers
    galaxies = 0
    for path in paths:
        with h5py.File(path, "r") as f:
            galaxies += int(f["galaxies"]["columns"]["pos"].shape[0])
    row |= {"chunks": len(paths), "galaxies": galaxies, "peak_rss_gib": peak_rss_gib()}
    print(json.dumps(row), flush=True)


def same_chunks(first: Path, second: Path) -> bool:
    """Every column of every chunk file of two mock folders equal."""
    names = sorted(p.name for p in first.glob("galaxies_*.h5"))
    if names != sorted(p.name for p in second.glob("galaxies_*.h5")):
        return False
    for name in names:
        with h5py.File(first / name, "r") as a, h5py.File(second / name, "r") as b:
            ca, cb = a["galaxies"]["columns"], b["galaxies"]["columns"]
            if set(ca) != set(cb) or not all(np.array_equal(ca[k][()], cb[k][()]) for k in ca):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000_000)
    parser.add_argument("--chunk-rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=Path("runs") / "bench-hod-chunks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=["dask", "local"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        configuration(args)
        return
    args.folder.mkdir(parents=True, exist_ok=True)
    halos = args.folder / "halos.h5"
    from cosmoseg.data import count_rows

    if not halos.exists() or count_rows(halos, "halos") != args.n:
        start = time.perf_counter()
        length = write_catalog(halos, args.n, args.seed)
        print(f"# {args.n} haloes in {length:.0f} Mpc/h written in {time.perf_counter() - start:.0f} s", flush=True)
    print(
        f"# {args.n} haloes, chunks of {args.chunk_rows}; file {halos.stat().st_size / 2**30:.2f} GiB; "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, torch {torch.__version__}",
        flush=True,
    )
    rows = []
    for mode in ("dask", "local"):
        command = [sys.executable, __file__, "--mode", mode, "--n", str(args.n), "--chunk-rows", str(args.chunk_rows)]
        command += ["--workers", str(args.workers), "--folder", str(args.folder)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    equal = same_chunks(args.folder / "mock-dask", args.folder / "mock-local")
    print(f"# the two mocks' chunk files equal galaxy for galaxy: {equal}")
    print(
        "\n| configuration | time (s) | setup (s) | galaxies | peak memory, calling process (GiB) | per worker (GiB) |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        if row["mode"] == "local":
            name, setup, workers = "one process, 1 thread, chunk after chunk", "–", "–"
        else:
            name = f"LocalCluster of {row['workers']} workers × 1 thread"
            setup = f"{row['setup_seconds']:.1f}"
            workers = ", ".join(f"{w:.2f}" for w in row["worker_peak_rss_gib"])
        print(
            f"| {name} | {row['seconds']:.0f} | {setup} | {row['galaxies']} | {row['peak_rss_gib']:.2f} | {workers} |"
        )


if __name__ == "__main__":
    main()
