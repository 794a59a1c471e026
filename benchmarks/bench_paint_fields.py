"""Time the dm2gal fields (`cosmoseg.paint.fields.paint_fields`): DM (CIC), haloes (CIC), stellar mass (NGP).

    python benchmarks/bench_paint_fields.py [--n-part 128] [--n 256] [--length 75] [--halos 20000]
                                            [--galaxies 20000] [--device cpu|cuda] [--repeat 3] [--threads T]

Particles: the 2LPT initial conditions of `cosmoseg.sim.initial_conditions` (n_part^3, Eisenstein-Hu P(k), float32)
at z = 0 — clustered like a late snapshot's large scales. Haloes and galaxies: uniform random positions with masses
10^11-10^14 and log M* 8-11.5 (their cost does not depend on clustering). Prints the wall seconds of one
`paint_fields` call with and without galaxies (best of --repeat after one warm-up) and the peak memory.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch

from cosmoseg import Cosmology
from cosmoseg.data import GalaxyCatalog, HaloCatalog
from cosmoseg.paint.fields import paint_fields
from cosmoseg.sim import initial_conditions


def _best(fn, repeat: int, device: torch.device) -> float:
    fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-part", type=int, default=128)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--length", type=float, default=75.0)
    parser.add_argument("--halos", type=int, default=20000)
    parser.add_argument("--galaxies", type=int, default=20000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    cosmology = Cosmology(power_backend="eisenstein-hu")
    particles = initial_conditions(cosmology, n=args.n_part, length=args.length, seed=1, z_start=0.01).particles
    particles = particles.to(device)
    gen = torch.Generator().manual_seed(2)
    halos = HaloCatalog(
        columns={
            "pos": torch.rand((args.halos, 3), generator=gen) * args.length,
            "mass": 10 ** (11 + 3 * torch.rand(args.halos, generator=gen, dtype=torch.float64)),
        },
        box=particles.box,
    ).to(device)
    galaxies = GalaxyCatalog(
        columns={
            "pos": torch.rand((args.galaxies, 3), generator=gen) * args.length,
            "log_mstar": 8 + 3.5 * torch.rand(args.galaxies, generator=gen),
        },
        box=particles.box,
    ).to(device)

    two = _best(lambda: paint_fields(particles, halos, n=args.n), args.repeat, device)
    three = _best(lambda: paint_fields(particles, halos, galaxies, n=args.n), args.repeat, device)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{args.n_part}^3 particles, {args.halos} haloes, {args.galaxies} galaxies -> {args.n}^3 grid on {device}")
    print(f"paint_fields (log_dm, log_halo):            {two:.2f} s")
    print(f"paint_fields (log_dm, log_halo, log_mstar): {three:.2f} s")
    print(f"peak resident memory: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
