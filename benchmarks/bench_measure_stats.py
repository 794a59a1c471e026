"""Speed of the one-point PDF, the halo mass function and the segmentation scores on this machine.

python benchmarks/bench_measure_stats.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from cosmoseg import Box, Cosmology, Segmentation
from cosmoseg.measure.mass_function import halo_mass_function, theory_in_bins
from cosmoseg.measure.onepoint import field_pdf
from cosmoseg.measure.stages import SegmentationScoresParams, SegmentationScoresStage
from cosmoseg.pipeline.context import RunContext


def best(func: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def blocky_labels(n: int, generator: torch.Generator) -> torch.Tensor:
    """Haloes of 4^3 voxels on 60% of a coarse grid: a stand-in truth with many instances."""
    idx = torch.arange(n) // 4
    m = n // 4
    labels = idx.view(n, 1, 1) * m * m + idx.view(1, n, 1) * m + idx.view(1, 1, n) + 1
    keep = torch.rand((m, m, m), generator=generator) < 0.6
    keep = keep.repeat_interleave(4, 0).repeat_interleave(4, 1).repeat_interleave(4, 2)
    return torch.where(keep, labels, 0)


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    for n in (128, 256):
        x = torch.randn((n, n, n), generator=generator)
        plain = best(lambda x=x: field_pdf(x, 500.0, bins=100))
        smoothed = best(lambda x=x: field_pdf(x, 500.0, smoothing_radius=10.0, bins=100))
        print(f"field_pdf {n}^3: no smoothing {plain:.3f} s; top-hat R = 10 Mpc/h {smoothed:.3f} s")
    masses = 10 ** (11 + 4 * torch.rand(10**6, generator=generator, dtype=torch.float64))
    print(f"halo_mass_function, 1e6 haloes, 20 bins: {best(lambda: halo_mass_function(masses, 1e9, n_bins=20)):.4f} s")
    cosmology = Cosmology(power_backend="eisenstein-hu")
    table = halo_mass_function(masses, 1e9, n_bins=20)
    start = time.perf_counter()
    theory_in_bins(cosmology, table["m_low"], table["m_high"], model="tinker08")
    first = time.perf_counter() - start
    again = best(lambda: theory_in_bins(cosmology, table["m_low"], table["m_high"], model="tinker08"))
    print(f"theory_in_bins tinker08, 20 bins: first call {first:.3f} s, then {again:.4f} s")
    box = Box(length=256.0, cosmology=cosmology)
    for n in (128, 256):
        truth_labels = blocky_labels(n, generator)
        predicted = torch.roll(truth_labels, 1, 0) * 3 + 5
        predicted = torch.where(predicted == 5, 0, predicted)
        probabilities = (predicted > 0).float() * 0.8 + 0.1
        truth = Segmentation(labels=truth_labels, box=box)
        prediction = Segmentation(labels=predicted, probabilities=probabilities, box=box)
        stage = SegmentationScoresStage(SegmentationScoresParams(), RunContext(device=torch.device("cpu"), seed=0))
        seconds = best(lambda s=stage, t=truth, p=prediction: s.run(truth=t, prediction=p), repeat=2)
        scores = stage.run(truth=truth, prediction=prediction)["scores"]
        print(
            f"segmentation_scores {n}^3 ({truth.n_instances} true haloes): {seconds:.2f} s; "
            f"F1 {float(scores['F1'][0]):.3f}, instance F1 {float(scores['instance_f1'][0]):.3f}, "
            f"ARI {float(scores['ARI'][0]):.3f}"
        )


if __name__ == "__main__":
    main()
