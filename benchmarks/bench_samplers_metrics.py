"""Speed of the sampler metrics: measure.two_sample, measure.calibration and measure.report on this machine.

python benchmarks/bench_samplers_metrics.py [--only two_sample|calibration|report] [--repeat 3]

- two_sample: catalogs of 10^4 galaxies with 4 property columns (+ 1 context column, log_mhost): KS + W1,
  the energy distance (4000 vs 4000 rows, without and with 100 permutations), the C2ST with the MLP and
  the k-NN classifier, and the measure.two_sample stage (defaults + 1 context column). Best of ``--repeat``
  for KS + W1 and the plain energy distance, a single run for the rest (the C2ST and the stage take seconds).
- calibration: the measure.calibration stage on B = 10^4 estimates of P = 2 parameters, with S = 1000
  posterior samples each and from Gaussian mean ± std; best of ``--repeat``.
- report: the measure.report stage per table kind (small tables, 1-20 rows, like those of
  tests/measure/test_figures.py), writing the PNG to a temporary folder; best of ``--repeat``, with the PNG
  size. The first call of the process also imports matplotlib, timed separately.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable

import torch

from cosmoseg.data import GalaxyCatalog, ParameterEstimate, Table
from cosmoseg.measure.stages import (
    CalibrationParams,
    CalibrationStage,
    ReportParams,
    ReportStage,
    TwoSampleParams,
    TwoSampleStage,
)
from cosmoseg.measure.twosample import c2st, energy_distance, ks_2samp, wasserstein_1d
from cosmoseg.pipeline.context import RunContext
from cosmoseg.testing import toy_box

PROPERTIES = ("log_mstar", "log_ssfr", "color_gi", "log_radius")
SECTIONS = ("two_sample", "calibration", "report")


def best(func: Callable[[], object], repeat: int = 3) -> float:
    """The shortest of ``repeat`` wall-clock times of ``func()``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def galaxy_catalog(n: int, generator: torch.Generator) -> GalaxyCatalog:
    """A stand-in galaxy catalog: positions, a host mass log_mhost and 4 properties that scatter around it."""
    host = 11 + 3 * torch.rand(n, generator=generator, dtype=torch.float64)
    columns = {"pos": 100 * torch.rand((n, 3), generator=generator, dtype=torch.float64), "log_mhost": host}
    for name in PROPERTIES:
        columns[name] = host + torch.randn(n, generator=generator, dtype=torch.float64)
    return GalaxyCatalog(columns=columns, box=toy_box(100.0))


def bench_two_sample(repeat: int) -> None:
    generator = torch.Generator().manual_seed(0)
    n = 10_000
    a, b = galaxy_catalog(n, generator), galaxy_catalog(n, generator)
    xa = torch.stack([a[name] for name in PROPERTIES], 1)
    xb = torch.stack([b[name] for name in PROPERTIES], 1)
    print(f"measure.two_sample: {n} vs {n} galaxies, {len(PROPERTIES)} property columns + 1 context column")

    seconds = best(lambda: (ks_2samp(xa, xb), wasserstein_1d(xa, xb)), repeat)
    print(f"  KS + W1, 4 columns: {seconds:.3f} s")
    ea, eb = xa[:4000], xb[:4000]
    seconds = best(lambda: energy_distance(ea, eb), repeat)
    print(f"  energy distance, 4000 vs 4000 rows, 4-D: {seconds:.2f} s")
    seconds = best(lambda: energy_distance(ea, eb, n_permutations=100, generator=generator), 1)
    print(f"  energy distance, 4000 vs 4000 rows, 4-D, 100 permutations: {seconds:.2f} s")
    for classifier in ("mlp", "knn"):
        seconds = best(
            lambda classifier=classifier: c2st(
                xa,
                xb,
                context_a=a["log_mhost"],
                context_b=b["log_mhost"],
                classifier=classifier,
                generator=generator,
            ),
            1,
        )
        print(f"  C2ST {classifier}, 5 features: {seconds:.2f} s")

    ctx = RunContext(device=torch.device("cpu"), seed=1, stage_id="two_sample")
    stage = TwoSampleStage(TwoSampleParams(context_columns=("log_mhost",)), ctx)
    seconds = best(lambda: stage.run(sample=a, reference=b), 1)
    print(f"  stage (defaults + 1 context column): {seconds:.2f} s")


def bench_calibration(repeat: int) -> None:
    generator = torch.Generator().manual_seed(0)
    n_estimates, n_samples = 10_000, 1000
    mean = torch.randn((n_estimates, 2), generator=generator, dtype=torch.float64)
    truth = mean + torch.randn((n_estimates, 2), generator=generator, dtype=torch.float64)
    samples = mean[:, None] + torch.randn((n_estimates, n_samples, 2), generator=generator, dtype=torch.float64)
    ctx = RunContext(device=torch.device("cpu"), seed=1, stage_id="calibration")
    stage = CalibrationStage(CalibrationParams(), ctx)
    print(f"measure.calibration: B = {n_estimates} estimates of P = 2 parameters")
    for label, draws in ((f"S = {n_samples} posterior samples each", samples), ("Gaussian mean +- std", None)):
        estimate = ParameterEstimate(names=("a", "b"), mean=mean, std=torch.ones_like(mean), samples=draws, truth=truth)
        seconds = best(lambda estimate=estimate: stage.run(estimate=estimate), repeat)
        print(f"  stage, {label}: {seconds:.3f} s")


def report_tables() -> dict[str, Table]:
    """One small table per kind that measure.report draws (the same as in tests/measure/test_figures.py)."""
    k = torch.linspace(0.02, 0.5, 20, dtype=torch.float64)
    power = 1e4 * (k / 0.1) ** -1.5
    theta = torch.linspace(0.1, 3.0, 10, dtype=torch.float64)
    mass = torch.logspace(12, 15, 10, dtype=torch.float64)
    hmf = 1e-4 * (mass / 1e12) ** -0.9 * torch.exp(-mass / 3e14)
    z = torch.tensor([-1.645, -0.674, 0.0, 0.674, 1.645], dtype=torch.float64)
    return {
        "power_spectrum": Table(columns={"k": k, "power": power, "power_linear": power * 1.01}),
        "bispectrum": Table(
            columns={
                "k1": torch.full((20,), 0.1).double(),
                "k2": torch.cat([torch.full((10,), 0.1), torch.full((10,), 0.2)]).double(),
                "theta": torch.cat([theta, theta]),
                "Q": torch.cat([theta.cos(), theta.sin()]),
            }
        ),
        "pdf": Table(
            columns={"low": theta - 0.1, "high": theta + 0.1, "pdf": (-theta).exp(), "pdf_err": 0.01 + 0 * theta}
        ),
        "mass_function": Table(columns={"m_mid": mass, "dndlnm": hmf, "dndlnm_err": 0.1 * hmf, "dndlnm_tinker08": hmf}),
        "violin": Table(
            columns={"log_m_true": torch.arange(12.0, 14.5, 0.5).double(), "quantiles": 13 + 0.3 * z.expand(5, 5)},
            meta={"quantile_levels": "0.05,0.25,0.5,0.75,0.95"},
        ),
        "coverage": Table(
            columns={
                "parameter": torch.tensor([0, 0, 1, 1]),
                "level": torch.tensor([0.5, 0.9, 0.5, 0.9]),
                "coverage": torch.tensor([0.45, 0.88, 0.6, 0.95]),
                "coverage_err": torch.full((4,), 0.02),
            },
            meta={"parameter_0": "omega_m", "parameter_1": "sigma_8"},
        ),
        "pit": Table(
            columns={
                "pit_low": torch.linspace(0, 0.8, 5),
                "pit_high": torch.linspace(0.2, 1.0, 5),
                "count": torch.tensor([10.0, 12, 9, 11, 8]),
            }
        ),
        "two_sample": Table(
            columns={
                "column": torch.arange(2),
                "ks_statistic": torch.tensor([0.1, 0.2]),
                "wasserstein": torch.tensor([0.3, 0.1]),
            },
            meta={"column_0": "log_mstar", "column_1": "color_gi"},
        ),
        "c2st": Table(columns={"auc": torch.tensor([0.6]), "auc_err": torch.tensor([0.02])}),
        "generic": Table(columns={"x": torch.linspace(0, 1, 5), "y": torch.linspace(1, 2, 5)}),
    }


def bench_report(repeat: int) -> None:
    tables = report_tables()
    print("measure.report: one PNG per table kind (1-20 rows), written to a temporary folder")
    with tempfile.TemporaryDirectory() as folder:
        ctx = RunContext(device=torch.device("cpu"), seed=1, stage_id="report", work_dir=pathlib.Path(folder))
        stage = ReportStage(ReportParams(), ctx)
        importing = "matplotlib" not in sys.modules
        start = time.perf_counter()
        stage.run(table=tables["generic"], reference=None)
        note = " (imports matplotlib)" if importing else " (matplotlib already imported)"
        print(f"  first call{note}: {time.perf_counter() - start:.2f} s")
        for kind, table in tables.items():
            seconds = best(lambda table=table: stage.run(table=table, reference=None), repeat)
            size = (pathlib.Path(folder) / "report" / f"{kind}.png").stat().st_size
            print(f"  {kind}: {seconds:.2f} s, {size / 1024:.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this part (repeatable)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of the quick timings (best of)")
    args = parser.parse_args()
    sections = args.only or list(SECTIONS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "two_sample" in sections:
        bench_two_sample(args.repeat)
    if "calibration" in sections:
        bench_calibration(args.repeat)
    if "report" in sections:
        bench_report(args.repeat)


if __name__ == "__main__":
    main()
