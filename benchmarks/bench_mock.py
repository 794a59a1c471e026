"""Time and size ``cosmoseg mock`` on Gadget-4 snapshots of 128^3 and 256^3 particles.

    python benchmarks/bench_mock.py [--n 128 256] [--spacing 1.0] [--threads 2] [--work runs/bench_mock]

One-off setup, not timed in the mock: for each n, 2LPT initial conditions (Planck 2018, n^3 particles in a box of
n x ``--spacing`` Mpc/h) and a 10-step particle-mesh run to z = 0 (``mesh_factor`` 1), written as a Gadget-4
snapshot of four chunks (NTYPES 2, kpc/h, single precision; ``cosmoseg.io.writers``). Cached in ``--work``.

The measurement: ``cosmoseg mock SNAPSHOT --output DIR -q`` in a fresh child process (the shipped population model,
FoF on the snapshot, the catalog and its summary figure), best of ``--repeat``; the wall time of the whole command,
the seconds of each stage from the run's manifest, and the child's peak resident memory (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch


def make_snapshot(n: int, spacing: float, work: Path) -> Path:
    """The Gadget-4 snapshot of an n^3 particle-mesh run (made once, then reused)."""
    folder = work / f"n{n}" / "snapdir_005"
    if (folder / "snap_005.3.hdf5").is_file():
        return folder
    from cosmoseg.data import Cosmology
    from cosmoseg.io.writers import write_gadget4_snapshot
    from cosmoseg.sim.ics import initial_conditions
    from cosmoseg.sim.nbody import run_pm

    start = time.perf_counter()
    particles = initial_conditions(Cosmology(), n=n, length=n * spacing, seed=n, z_start=19.0).particles
    final = run_pm(particles, steps=10, mesh_factor=1)[-1]
    shutil.rmtree(folder, ignore_errors=True)
    write_gadget4_snapshot(final, folder, n_files=4, n_types=2)
    print(f"setup n = {n}: ICs + 10 PM steps + writing, {time.perf_counter() - start:.0f} s (not part of the mock)")
    return folder


def run_mock(snapshot: Path, output: Path, threads: int) -> tuple[float, float, dict[str, float], dict[str, object]]:
    """(wall seconds, peak resident GiB, seconds per stage, catalog meta) of one ``cosmoseg mock`` in a child."""
    shutil.rmtree(output, ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    code = (
        "import resource, sys, torch; torch.set_num_threads(int(sys.argv[1])); "
        "from cosmoseg.cli import build_app; "
        "app = build_app(); "
        "exec('try:\\n app(sys.argv[2:], standalone_mode=False)\\nfinally:\\n "
        'print("maxrss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\')'
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(threads), "mock", str(snapshot), "--output", str(output), "-q"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"cosmoseg mock failed:\n{done.stdout}\n{done.stderr}")
    rss = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("maxrss_kib"))
    manifest = json.loads((output / "manifest.json").read_text())
    stages = {sid: float(rec["seconds"]) for sid, rec in manifest["stages"].items()}
    from cosmoseg.data import load_artifact

    meta = dict(load_artifact(output / "catalog.h5")["catalog"].meta)
    return wall, rss / 2**20, stages, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--spacing", type=float, default=1.0, help="Mpc/h between particles (box = n x spacing)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("runs/bench_mock"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    rows = []
    for n in args.n:
        snapshot = make_snapshot(n, args.spacing, args.work)
        size = sum(p.stat().st_size for p in snapshot.iterdir()) / 2**20
        best = None
        for _ in range(args.repeat):
            result = run_mock(snapshot, args.work / f"n{n}" / "mock", args.threads)
            best = result if best is None or result[0] < best[0] else best
        assert best is not None
        wall, rss, stages, meta = best
        rows.append((n, size, wall, rss, stages, meta))
        per_stage = ", ".join(f"{sid} {sec:.1f} s" for sid, sec in stages.items())
        print(
            f"n = {n}^3 ({n * args.spacing:g} Mpc/h, snapshot {size:.0f} MiB in 4 chunks): mock {wall:.1f} s, "
            f"peak {rss:.2f} GiB; {per_stage}; {meta['n_galaxies']} galaxies ({meta['n_satellites']} satellites)"
        )
    print(
        "\n| particles | box | snapshot | wall | peak memory | read | FoF | galaxies | catalog | summary | galaxies |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n, size, wall, rss, stages, meta in rows:
        cells = " | ".join(
            f"{stages.get(s, 0.0):.1f} s" for s in ("snapshot", "halos", "galaxies", "catalog", "summary")
        )
        print(
            f"| {n}³ | {n * args.spacing:g} Mpc/h | {size:.0f} MiB | {wall:.1f} s | {rss:.2f} GiB | {cells} | "
            f"{meta['n_galaxies']} |"
        )


if __name__ == "__main__":
    main()
