"""Time the Zheng et al. (2007) HOD: cosmoseg's ``prepare_hod`` and ``populate`` beside halotools' ``zheng07``.

    python benchmarks/bench_hod.py [--n 1000000] [--box 1000] [--repeat 5] [--seed 0] [--threads 1,2]

The stand-in catalog: masses drawn from dn/dlnM proportional to M^-0.9 between 1e11 and 1e15 Msun/h, uniform
positions in a box of ``--box`` Mpc/h, Gaussian velocities of 300 km/s per axis, concentrations from
``concentration_duffy08``, r200 from the mass (200 x mean matter density). HOD parameters: the defaults (Zheng et
al. 2007, M_r < -21; halotools ``zheng07`` with ``threshold=-21``), and their M_r < -20 values for a denser sample.
Times are the best of ``--repeat`` calls; cosmoseg runs at each ``--threads`` count (``torch.set_num_threads``).

When halotools is installed, its ``zheng07`` model runs on the same catalog given as a ``UserSuppliedHaloCatalog``
(halo_mvir = our mass, halo_rvir = our r200, halo_nfw_conc = our concentration, same positions and velocities),
like for like:

- the same haloes: ``populate_mock(..., Num_ptcl_requirement=0)``, so halotools' completeness cut
  (halo_mvir > Num_ptcl_requirement x particle_mass, 300 particles by default) keeps every halo; the script
  asserts that the halo table halotools populates has all of them, and compares the numbers of centrals and
  satellites of the two sides (ratio and its Poisson sigma, from the mean occupations);
- (a) repopulation: cosmoseg ``populate(prepared, params, seed)`` vs halotools ``model.mock.populate(seed=...)``
  after a first ``populate_mock``;
- (b) one-off setup: ``prepare_hod`` vs ``HodMockFactory(...)`` (what ``populate_mock`` builds before populating:
  completeness cut, copy of the halo table, NFW lookup tables), and setup plus the first population:
  ``prepare_hod`` + ``populate`` vs ``populate_mock`` on a freshly built model (its construction is timed apart);
- the same work: both put centrals at the halo centre with the halo velocity (no central velocity bias) and
  satellites on an NFW profile truncated at r200 / halo_rvir, with the host velocity plus an isotropic Gaussian.
  halotools' Gaussian width is the Jeans solution sigma_r(r / r_vir, c) (lookup-table interpolation per
  satellite), cosmoseg's one isothermal sigma per halo; halotools also copies the halo columns into its galaxy
  table (an astropy Table), cosmoseg returns pos, vel, is_central and host.
halotools is single-threaded NumPy; it runs once, after the cosmoseg rows.
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
from cosmoseg.galaxies.hod import (
    HODParams,
    concentration_duffy08,
    mean_occupation,
    populate,
    prepare_hod,
    r200_from_mass,
)

# Zheng et al. (2007) M_r < -20: a denser sample, for the cost per galaxy
DENSER = HODParams(log_m_min=12.02, sigma_log_m=0.26, log_m0=11.38, log_m1=13.31, alpha=1.06)


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


def best_of_fresh(repeat: int, make: Callable[[], Any], call: Callable[[Any], Any]) -> tuple[float, Any]:
    """Best time of ``call(make())`` over ``repeat`` tries, ``make`` (a fresh object each try) not timed."""
    best, result = math.inf, None
    for _ in range(repeat):
        fresh = make()
        start = time.perf_counter()
        call(fresh)
        best = min(best, time.perf_counter() - start)
        result = fresh
    return best, result


def cosmoseg_times(halos: HaloCatalog, params: HODParams, repeat: int, seed: int) -> dict[str, Any]:
    t_prep, prepared = best_of(repeat, lambda: prepare_hod(halos))
    t_pop, galaxies = best_of(repeat, lambda: populate(prepared, params, seed))
    t_dense, dense = best_of(repeat, lambda: populate(prepared, DENSER, seed))
    t_first, _ = best_of(repeat, lambda: populate(prepare_hod(halos), params, seed))
    return {
        "setup": t_prep,
        "repop": t_pop,
        "repop_dense": t_dense,
        "first": t_first,
        "n_cen": int(galaxies["is_central"].sum()),
        "n_sat": int((~galaxies["is_central"]).sum()),
        "n_dense": len(dense),
    }


def halotools_times(halos: HaloCatalog, params: HODParams, repeat: int, seed: int) -> dict[str, Any] | str:
    try:
        import halotools
        from halotools.empirical_models import HodMockFactory, PrebuiltHodModelFactory
        from halotools.sim_manager import UserSuppliedHaloCatalog
    except ImportError:
        return "halotools is not installed"
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

    def as_halotools(p: HODParams) -> dict[str, float]:
        return {
            "logMmin": p.log_m_min,
            "sigma_logM": p.sigma_log_m,
            "logM0": p.log_m0,
            "logM1": p.log_m1,
            "alpha": p.alpha,
        }

    def make_model() -> Any:
        model = PrebuiltHodModelFactory("zheng07", threshold=-21)
        model.param_dict.update(as_halotools(params))
        return model

    # every halo populated: halotools keeps halo_mvir > Num_ptcl_requirement * particle_mass
    keep_all = {"Num_ptcl_requirement": 0}
    t_model, _ = best_of(repeat, make_model)
    t_setup, _ = best_of_fresh(repeat, make_model, lambda m: HodMockFactory(halocat=catalog, model=m, **keep_all))
    t_first, model = best_of_fresh(repeat, make_model, lambda m: m.populate_mock(catalog, seed=seed, **keep_all))
    assert len(model.mock.halo_table) == n, f"halotools populated {len(model.mock.halo_table)} of {n} haloes"
    t_repop, _ = best_of(repeat, lambda: model.mock.populate(seed=seed))
    assert len(model.mock.halo_table) == n, f"halotools populated {len(model.mock.halo_table)} of {n} haloes"
    is_central = np.asarray(model.mock.galaxy_table["gal_type"] == "centrals")
    n_cen, n_sat = int(is_central.sum()), int((~is_central).sum())
    model.param_dict.update(as_halotools(DENSER))
    t_dense, _ = best_of(repeat, lambda: model.mock.populate(seed=seed))
    return {
        "version": halotools.__version__,
        "model": t_model,
        "setup": t_setup,
        "first": t_first,
        "repop": t_repop,
        "repop_dense": t_dense,
        "n_halos": len(model.mock.halo_table),
        "n_cen": n_cen,
        "n_sat": n_sat,
        "n_dense": len(model.mock.galaxy_table),
    }


def count_check(label: str, ours: int, theirs: int, mean: float, variance: float) -> str:
    """Our count over theirs, with the sigma of that ratio for two independent draws (variance of one draw given)."""
    ratio, sigma = ours / theirs, math.sqrt(2.0 * variance) / mean
    return (
        f"{label}: cosmoseg {ours}, halotools {theirs}, expected {mean:.0f}; "
        f"ratio {ratio:.4f} (1 +- {sigma:.4f}: {(ratio - 1.0) / sigma:+.1f} sigma)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--box", type=float, default=1000.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts for cosmoseg")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]

    halos = standin_catalog(args.n, args.box, args.seed)
    params = HODParams()
    ours: dict[int, dict[str, Any]] = {}
    for count in threads:
        torch.set_num_threads(count)
        ours[count] = cosmoseg_times(halos, params, args.repeat, args.seed)
    theirs = halotools_times(halos, params, args.repeat, args.seed)

    print(f"HOD benchmark: {args.n} haloes, box {args.box:g} Mpc/h, seed {args.seed}, best of {args.repeat}")
    version = theirs["version"] if isinstance(theirs, dict) else "not installed"
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"halotools {version} (single-threaded NumPy)"
    )
    first = ours[threads[0]]
    mean_cen, mean_sat = (t.numpy() for t in mean_occupation(halos["mass"], params))
    if isinstance(theirs, dict):
        print(f"haloes populated: cosmoseg {args.n}, halotools {theirs['n_halos']} (Num_ptcl_requirement=0)")
        print(
            count_check("centrals", first["n_cen"], theirs["n_cen"], mean_cen.sum(), (mean_cen * (1 - mean_cen)).sum())
        )
        print(count_check("satellites", first["n_sat"], theirs["n_sat"], mean_sat.sum(), mean_sat.sum()))
        print(f"M_r < -20 parameters: cosmoseg {first['n_dense']} galaxies, halotools {theirs['n_dense']}")
        print(
            "work: both draw central occupations, satellite counts, NFW satellite positions and velocities "
            "(host velocity + Gaussian;\n  halotools' width is the Jeans sigma_r(r) from a lookup table, "
            "cosmoseg's one isothermal sigma per halo)"
        )
    else:
        print(f"halotools rows skipped: {theirs}")

    head = "".join(f"  cosmoseg {t} thr" for t in threads)
    ratio_head = "".join(f"  ratio {t} thr" for t in threads)
    print(f"\n{'seconds':<46}{head}  halotools{ratio_head if isinstance(theirs, dict) else ''}")
    rows = [
        ("(a) populate / mock.populate, M_r < -21", "repop"),
        ("(a) populate / mock.populate, M_r < -20", "repop_dense"),
        ("(b) setup: prepare_hod / HodMockFactory", "setup"),
        ("(b) prepare_hod + populate / populate_mock", "first"),
    ]
    for label, key in rows:
        line = f"{label:<46}" + "".join(f"{ours[t][key]:>15.3f}" for t in threads)
        if isinstance(theirs, dict):
            line += f"{theirs[key]:>11.3f}" + "".join(f"{theirs[key] / ours[t][key]:>12.1f}x" for t in threads)
        print(line)
    if isinstance(theirs, dict):
        print(f"halotools model construction (PrebuiltHodModelFactory, not in (b)): {theirs['model']:.4f} s")
    print("ratio = halotools time / cosmoseg time")


if __name__ == "__main__":
    main()
