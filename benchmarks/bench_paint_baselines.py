"""Time the dm2gal baselines and sampler: fit + assign of the conditional resampler, the weighted sampler.

python benchmarks/bench_paint_baselines.py [--galaxies 100000] [--repeats 5] [--threads 2]

Toy truth: haloes with log M uniform in [11, 14.5], one central each plus Poisson satellites, log M* = log M - 2
+ 0.2 N(0, 1); fit and assign on the same catalog (the paper's HOD benchmark applied to the truth split). The
sampler: dm2gal weights over N voxel masses (100 bins, 10^8 to 10^11.5 Msun/h), one epoch of N draws.
"""

from __future__ import annotations

import argparse
import time

import torch

from cosmoseg.data import Box, GalaxyCatalog, HaloCatalog
from cosmoseg.paint.baselines import ConditionalMassResampler
from cosmoseg.paint.sampling import WeightedSampler


def toy_truth(n_galaxies: int, seed: int = 0) -> tuple[GalaxyCatalog, HaloCatalog]:
    """About ``n_galaxies`` galaxies (about 77% centrals) in a 200 Mpc/h box."""
    g = torch.Generator().manual_seed(seed)
    box = Box(length=200.0)
    n_halos = round(n_galaxies / 1.3)  # 0.3 satellites per halo on average
    log_m = 11.0 + 3.5 * torch.rand(n_halos, generator=g, dtype=torch.float64)
    pos = torch.rand(n_halos, 3, generator=g, dtype=torch.float64) * box.length
    halos = HaloCatalog(columns={"pos": pos, "mass": 10.0**log_m}, box=box)
    rate = torch.where(log_m > 12.75, 0.6, 0.0).to(torch.float64)
    n_sat = torch.poisson(rate, generator=g).long()
    host = torch.cat([torch.arange(n_halos), torch.arange(n_halos).repeat_interleave(n_sat)])
    n = host.numel()
    columns = {
        "pos": pos[host],
        "host": host,
        "is_central": torch.arange(n) < n_halos,
        "log_mstar": log_m[host] - 2.0 + 0.2 * torch.randn(n, generator=g, dtype=torch.float64),
    }
    return GalaxyCatalog(columns=columns, box=box), halos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxies", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    galaxies, halos = toy_truth(args.galaxies)
    fit_s, assign_s, total_s = [], [], []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        resampler = ConditionalMassResampler(bin_dex=0.1).fit(galaxies, halos)
        t1 = time.perf_counter()
        resampler.assign(galaxies, halos, torch.Generator().manual_seed(i))
        t2 = time.perf_counter()
        fit_s.append(t1 - t0)
        assign_s.append(t2 - t1)
        total_s.append(t2 - t0)
    print(
        f"{len(galaxies)} galaxies, {len(halos)} haloes: fit {1e3 * min(fit_s):.1f} ms, "
        f"assign {1e3 * min(assign_s):.1f} ms, together {1e3 * min(total_s):.1f} ms "
        f"(best of {args.repeats}, {args.threads} threads)"
    )

    g = torch.Generator().manual_seed(1)
    mstar = 10.0 ** (8.0 + 3.5 * torch.rand(args.galaxies, generator=g, dtype=torch.float64) ** 3)
    times = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        sampler = WeightedSampler.from_masses(mstar, seed=i)
        _ = list(sampler)
        times.append(time.perf_counter() - t0)
    print(f"weighted sampler over {args.galaxies} samples: weights + one epoch of draws {1e3 * min(times):.1f} ms")


if __name__ == "__main__":
    main()
