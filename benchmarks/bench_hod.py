"""Time the Zheng et al. (2007) HOD: ``prepare_hod`` and ``populate`` on a stand-in halo catalog.

    python benchmarks/bench_hod.py [--n 1000000] [--box 1000] [--repeat 3] [--seed 0]

The stand-in catalog: masses drawn from dn/dlnM proportional to M^-0.9 between 1e11 and 1e15 Msun/h, uniform
positions in a box of ``--box`` Mpc/h, Gaussian velocities of 300 km/s per axis, concentrations from
``concentration_duffy08``, r200 from the mass (200 x mean matter density). Times are the best of ``--repeat``
calls, HOD parameters the defaults (Zheng et al. 2007, M_r < -21), with velocities; a second populate row
uses their M_r < -20 parameters (a denser sample).

When halotools is installed, its ``zheng07`` model (same parameters, ``populate_mock``) runs on the same
catalog given as a ``UserSuppliedHaloCatalog`` (halo_mvir = our mass, halo_rvir = our r200, halo_nfw_conc =
our concentration), side by side; otherwise that row says it is skipped.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from cosmoseg.data import Box, HaloCatalog
from cosmoseg.galaxies.hod import HODParams, concentration_duffy08, populate, prepare_hod, r200_from_mass


def standin_catalog(n: int, length: float, seed: int) -> HaloCatalog:
    """n haloes with dn/dlnM ~ M^-0.9 on [1e11, 1e15] Msun/h, uniform in a box of side ``length`` Mpc/h."""
    rng = np.random.default_rng(seed)
    slope, lo, hi = -0.9, 1e11, 1e15
    u = rng.random(n)
    # inverse CDF of p(ln M) ~ M^slope
    mass = (lo**slope + u * (hi**slope - lo**slope)) ** (1.0 / slope)
    box = Box(length=length)
    columns = {
        "pos": torch.from_numpy(rng.random((n, 3)) * length).float(),
        "vel": torch.from_numpy(rng.normal(0.0, 300.0, (n, 3))).float(),
        "mass": torch.from_numpy(mass),
        "concentration": torch.from_numpy(concentration_duffy08(mass)),
        "r200": torch.from_numpy(r200_from_mass(mass, box)),
    }
    return HaloCatalog(columns=columns, box=box)


def best_of(repeat: int, call: Callable[[], Any]) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    return best, result


def halotools_row(halos: HaloCatalog, params: HODParams, repeat: int, seed: int) -> tuple[str, str, str]:
    try:
        from halotools.empirical_models import PrebuiltHodModelFactory
        from halotools.sim_manager import UserSuppliedHaloCatalog
    except ImportError:
        return "halotools zheng07 populate_mock", "skipped", "halotools is not installed"
    n = len(halos)
    pos, vel = halos["pos"].double().numpy(), halos["vel"].double().numpy()
    ids = np.arange(n, dtype=np.int64)
    catalog = UserSuppliedHaloCatalog(
        redshift=0.0,
        Lbox=halos.box.length,
        particle_mass=1e9,
        halo_x=pos[:, 0],
        halo_y=pos[:, 1],
        halo_z=pos[:, 2],
        halo_vx=vel[:, 0],
        halo_vy=vel[:, 1],
        halo_vz=vel[:, 2],
        halo_id=ids,
        halo_hostid=ids,
        halo_upid=np.full(n, -1, dtype=np.int64),
        halo_mvir=halos["mass"].numpy(),
        halo_rvir=halos["r200"].numpy(),
        halo_nfw_conc=halos["concentration"].numpy(),
    )
    model = PrebuiltHodModelFactory("zheng07", threshold=-21)
    model.param_dict.update(
        logMmin=params.log_m_min,
        sigma_logM=params.sigma_log_m,
        logM0=params.log_m0,
        logM1=params.log_m1,
        alpha=params.alpha,
    )
    seconds, _ = best_of(repeat, lambda: model.populate_mock(catalog, seed=seed))
    return "halotools zheng07 populate_mock", f"{seconds:.3f}", f"{len(model.mock.galaxy_table)} galaxies"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--box", type=float, default=1000.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    halos = standin_catalog(args.n, args.box, args.seed)
    params = HODParams()
    t_prep, prepared = best_of(args.repeat, lambda: prepare_hod(halos))
    t_pop, galaxies = best_of(args.repeat, lambda: populate(prepared, params, args.seed))
    n_cen = int(galaxies["is_central"].sum())
    # Zheng et al. (2007) M_r < -20: a denser sample, for the cost per galaxy
    denser = HODParams(log_m_min=12.02, sigma_log_m=0.26, log_m0=11.38, log_m1=13.31, alpha=1.06)
    t_dense, dense = best_of(args.repeat, lambda: populate(prepared, denser, args.seed))
    rows = [
        ("cosmoseg prepare_hod", f"{t_prep:.3f}", f"{args.n} haloes"),
        ("cosmoseg populate", f"{t_pop:.3f}", f"{len(galaxies)} galaxies ({n_cen} centrals)"),
        ("cosmoseg populate (M_r < -20 params)", f"{t_dense:.3f}", f"{len(dense)} galaxies"),
        halotools_row(halos, params, args.repeat, args.seed),
    ]
    print(f"HOD benchmark: {args.n} haloes, box {args.box:g} Mpc/h, best of {args.repeat}")
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(f"{'step':<38} {'seconds':>8}  notes")
    for step, seconds, note in rows:
        print(f"{step:<38} {seconds:>8}  {note}")


if __name__ == "__main__":
    main()
