"""Time flow sampling: 10^6 central galaxies drawn by the shipped flow, fast inverse vs nflows' own inverse.

    python benchmarks/bench_flow_sampling.py [--n 1000000] [--model cosmoseg/galaxies/default_models/flow.pt]
        [--nflows-rows 50000] [--repeat 3]

The haloes are the model's training distribution (standardised conditions drawn from N(0, 1), mapped back with the
model's scaler). Rows: ``FlowSampler.sample(x, 1)`` for ``--n`` haloes (fast inverse, best of ``--repeat``); and
nflows' ``transform.inverse`` on ``--nflows-rows`` rows, scaled to ``--n`` (it is linear in the rows), on the same
noise, with the largest difference between the two.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import torch

from cosmoseg.galaxies.samplers.base import load_sampler
from cosmoseg.nn.flows import nflows_inverse


def row(step: str, seconds: str, note: str) -> None:
    print(f"{step:<40} {seconds:>8}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--model", default="cosmoseg/galaxies/default_models/flow.pt")
    parser.add_argument("--nflows-rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    sampler = load_sampler(args.model)
    gen = torch.Generator().manual_seed(0)
    assert sampler.x_scaler is not None
    x = sampler.x_scaler.inverse(torch.randn(args.n, len(sampler.condition_names), generator=gen))
    best = math.inf
    for _ in range(args.repeat):
        start = time.perf_counter()
        draws = sampler.sample(x, 1, generator=torch.Generator().manual_seed(1))
        best = min(best, time.perf_counter() - start)
    print(f"flow sampling: {args.model}, hyper {sampler.hyper}")
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    row("step", "seconds", "notes")
    row("FlowSampler.sample (fast inverse)", f"{best:.2f}", f"{tuple(draws.shape)} draws, best of {args.repeat}")

    rows = min(args.nflows_rows, args.n)
    noise = torch.randn(rows, len(sampler.target_names), generator=gen)
    context = torch.randn(rows, len(sampler.condition_names), generator=gen)
    model = sampler.model
    assert model is not None
    with torch.no_grad():
        start = time.perf_counter()
        expected, _ = model.inverse(noise, context=context)
        slow = (time.perf_counter() - start) * args.n / rows
    diff = float((nflows_inverse(model, noise, context) - expected).abs().max())
    row("nflows transform.inverse (scaled)", f"{slow:.2f}", f"{rows} rows x {args.n / rows:g}; max |diff| {diff:.1e}")


if __name__ == "__main__":
    main()
