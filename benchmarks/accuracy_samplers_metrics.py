"""Accuracy of the sampler metrics (measure.two_sample and measure.calibration) against SciPy and known answers.

python benchmarks/accuracy_samplers_metrics.py [--full] [--only two_sample|calibration]

- two_sample: KS statistic and p-value, W1 and the energy distance against SciPy (5000 vs 3000 points, 4-D);
  the C2ST under the null, z = (AUC - 1/2) / err over repeated pairs of 1000 + 1000 points from one
  3-D Gaussian (10 pairs per classifier by default, 40 with ``--full`` as quoted in the docs); the conditional
  C2ST under the null: y drawn twice from one known conditional on the same 1000 contexts (haloes), split by
  halo (the default for equal contexts) and with the old independent splits (``paired=False``), the same
  repeats; a 0.2 sigma mean shift in one of 3 dimensions (2000 + 2000 points) seen by the C2ST, the KS test
  and the energy distance (200 permutations).
- calibration: coverage at 68% and 95%, the PIT KS p-value and z_std of 10^4 Gaussian posteriors that claim
  a std of 1 (calibrated), 0.5 (over-confident) and 2 (under-confident) for truths that scatter by 1, against
  the exact coverage erf(s Phi^-1(1/2 + alpha/2) / sqrt 2); the same from 400 posterior samples each; the
  PIT uniformity test against scipy.stats.kstest(method="exact").

``--full --only two_sample`` (the figures quoted in the docs) took 28 s on 2 shared CPU cores (load average 6-7).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import scipy.stats as ss
import torch

from cosmoseg.data import ParameterEstimate
from cosmoseg.measure.calibration import calibration, pit_uniformity
from cosmoseg.measure.twosample import c2st, energy_distance, ks_2samp, wasserstein_1d

SECTIONS = ("two_sample", "calibration")


def versus_scipy() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn((5000, 4), generator=generator, dtype=torch.float64)
    b = 1.05 * torch.randn((3000, 4), generator=generator, dtype=torch.float64) + 0.02
    ks, w1 = ks_2samp(a, b), wasserstein_1d(a, b)
    an, bn = a.numpy(), b.numpy()
    d_statistic = d_pvalue = d_w1 = 0.0
    for j in range(a.shape[1]):
        reference = ss.ks_2samp(an[:, j], bn[:, j], method="asymp")
        d_statistic = max(d_statistic, abs(float(ks.statistic[j]) - reference.statistic))
        d_pvalue = max(d_pvalue, abs(float(ks.pvalue[j]) - reference.pvalue))
        d_w1 = max(d_w1, abs(float(w1[j]) - ss.wasserstein_distance(an[:, j], bn[:, j])))
    energy = energy_distance(a[:2000, 0], b[:2000, 0]).distance
    d_energy = abs(math.sqrt(energy) / ss.energy_distance(an[:2000, 0], bn[:2000, 0]) - 1)
    print(
        f"vs SciPy: KS statistic {d_statistic:.1e}, KS p-value {d_pvalue:.1e}, W1 {d_w1:.1e}, "
        f"sqrt(energy) rel {d_energy:.1e}"
    )


def c2st_null(classifier: str, repeats: int) -> None:
    """z = (AUC - 1/2) / err over ``repeats`` pairs of samples from one distribution: mean 0, std 1 if honest."""
    z = []
    for seed in range(repeats):
        generator = torch.Generator().manual_seed(100 + seed)
        x, y = torch.randn((1000, 3), generator=generator), torch.randn((1000, 3), generator=generator)
        result = c2st(x, y, classifier=classifier, generator=torch.Generator().manual_seed(seed))
        z.append((result.auc - 0.5) / result.auc_err)
    values = np.array(z)
    print(
        f"C2ST {classifier} null, {repeats} pairs of 1000+1000 points: mean z = {values.mean():+.2f}, "
        f"std z = {values.std(ddof=1):.2f}, |z| > 2: {int((np.abs(values) > 2).sum())}/{repeats}"
    )


def conditional_null(classifier: str, repeats: int) -> None:
    """y = m(c) + 0.3 N(0, 1) drawn twice for the same 1000 contexts c ~ N(0, 1)^3: one conditional, so the AUC
    should be 1/2; the old independent splits of the two samples learn a halo's context under one label and test
    it under the other."""
    for paired in (True, False):
        z, auc = [], []
        for seed in range(repeats):
            generator = torch.Generator().manual_seed(100 + seed)
            c = torch.randn((1000, 3), generator=generator)
            mean = torch.stack([c[:, 0] + 0.5 * c[:, 1], torch.tanh(c[:, 2]) - c[:, 0]], 1)
            ya = mean + 0.3 * torch.randn((1000, 2), generator=generator)
            yb = mean + 0.3 * torch.randn((1000, 2), generator=generator)
            result = c2st(
                ya,
                yb,
                context_a=c,
                context_b=c,
                paired=paired,
                classifier=classifier,
                generator=torch.Generator().manual_seed(seed),
            )
            z.append((result.auc - 0.5) / result.auc_err)
            auc.append(result.auc)
        values, aucs = np.array(z), np.array(auc)
        split = "halo split" if paired else "old independent splits"
        print(
            f"C2ST {classifier} conditional null, {split}, {repeats} x 1000 haloes: mean AUC = {aucs.mean():.3f} "
            f"(sd {aucs.std(ddof=1):.3f}), mean z = {values.mean():+.2f}, std z = {values.std(ddof=1):.2f}, "
            f"|z| > 2: {int((np.abs(values) > 2).sum())}/{repeats}"
        )


def shift_detection() -> None:
    """A 0.2 sigma mean shift in one of 3 dimensions, 2000 + 2000 points."""
    generator = torch.Generator().manual_seed(7)
    x, y = torch.randn((2000, 3), generator=generator), torch.randn((2000, 3), generator=generator)
    y[:, 0] += 0.2
    for classifier in ("knn", "mlp"):
        result = c2st(x, y, classifier=classifier, generator=torch.Generator().manual_seed(0))
        print(
            f"C2ST {classifier}, 0.2 sigma shift in one of 3 dims: AUC = {result.auc:.3f} +- {result.auc_err:.3f}, "
            f"p = {result.p_value:.1e}"
        )
    pvalues = ks_2samp(x, y).pvalue.tolist()
    print(f"KS p-values of the same: {[f'{v:.1e}' for v in pvalues]}")
    energy = energy_distance(x, y, n_permutations=200, generator=torch.Generator().manual_seed(0))
    print(f"energy distance of the same: {energy.distance:.4f}, p = {energy.p_value:.3f}")


def calibration_coverage() -> None:
    n_estimates = 10_000
    levels = (0.68, 0.95)
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn((n_estimates, 1), generator=generator, dtype=torch.float64)
    truth = mean + torch.randn((n_estimates, 1), generator=generator, dtype=torch.float64)  # true width 1
    for claimed in (1.0, 0.5, 2.0):
        estimate = ParameterEstimate(names=("p",), mean=mean, std=torch.full_like(mean, claimed), truth=truth)
        result = calibration(estimate, levels=levels)
        cov, err = result.coverage.coverage[:, 0].tolist(), result.coverage.err.tolist()
        exact = [math.erf(claimed * ss.norm.ppf(0.5 + level / 2) / math.sqrt(2)) for level in levels]
        print(
            f"std x {claimed}: coverage(68%) = {cov[0]:.4f} +- {err[0]:.4f} (expected {exact[0]:.4f}), "
            f"coverage(95%) = {cov[1]:.4f} +- {err[1]:.4f} (expected {exact[1]:.4f}), "
            f"PIT KS p = {float(result.ks_pvalue[0]):.2g}, z_std = {float(result.z_std[0]):.3f}"
        )
    samples = mean[:, None] + torch.randn((n_estimates, 400, 1), generator=generator, dtype=torch.float64)
    estimate = ParameterEstimate(names=("p",), mean=mean, std=torch.ones_like(mean), samples=samples, truth=truth)
    result = calibration(estimate, levels=levels)
    coverage = [round(c, 4) for c in result.coverage.coverage[:, 0].tolist()]
    print(f"400 samples each: coverage = {coverage}, PIT KS p = {float(result.ks_pvalue[0]):.2g}")
    u = torch.rand((500, 1), generator=generator, dtype=torch.float64) ** 1.1
    statistic, pvalue = pit_uniformity(u)
    reference = ss.kstest(u[:, 0].numpy(), "uniform", method="exact")
    print(
        f"KS vs scipy.stats.kstest(exact): |dD| = {abs(float(statistic[0]) - reference.statistic):.1e}, "
        f"|dp| = {abs(float(pvalue[0]) - reference.pvalue):.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="40 C2ST null repeats per classifier (the docs' run)")
    parser.add_argument("--repeats", type=int, default=None, help="C2ST null repeats per classifier")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this part (repeatable)")
    args = parser.parse_args()
    repeats = args.repeats if args.repeats is not None else (40 if args.full else 10)
    sections = args.only or list(SECTIONS)
    if "two_sample" in sections:
        versus_scipy()
        for classifier in ("knn", "mlp"):
            c2st_null(classifier, repeats)
        for classifier in ("knn", "mlp"):
            conditional_null(classifier, repeats)
        shift_detection()
    if "calibration" in sections:
        calibration_coverage()


if __name__ == "__main__":
    main()
