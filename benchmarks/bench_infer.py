"""Costs of the Ω_m inference chain (issue #20), on this machine: a suite box, its galaxies, a training epoch, the
posterior of one catalog.

    python benchmarks/bench_infer.py --suite configs/suites/omega-m.toml --galaxies suites/omega-m/galaxies-fiducial \
        --model runs/infer/pos-vel.pt --model runs/infer/rsd-flow.pt

- suite box: ``simulate_suite`` of two boxes of the suite file into a temporary folder (ICs, 10-step PM, FoF), per box;
- galaxies: ``paint_suite`` of those boxes (the galaxy model with its per-box nuisance parameters), per box;
- training epoch: one epoch of ``train_model`` on 100 boxes of ``--galaxies`` with each model's own settings;
- inference: ``estimate`` of one catalog (graph building included) with each model, median of 20 catalogs.
Graph building for 2×10^5 galaxies: ``benchmarks/bench_infer_graphs.py``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cosmoseg.galaxies.suite_galaxies import SuiteGalaxySettings, paint_suite
from cosmoseg.infer.training import (
    TrainSettings,
    build_graphs,
    estimate,
    graph_spec_of,
    load_catalogs,
    load_model,
    systematics_of,
    train_model,
)
from cosmoseg.sim.suites import load_suite, simulate_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=Path("configs/suites/omega-m.toml"))
    parser.add_argument("--galaxies", type=Path, required=True)
    parser.add_argument("--model", type=Path, action="append", default=[])
    parser.add_argument("--skip-simulation", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    if not args.skip_simulation:
        with tempfile.TemporaryDirectory() as tmp:
            config = load_suite(args.suite)
            started = time.perf_counter()
            simulate_suite(config, Path(tmp), boxes=[0, 1])
            per_box = (time.perf_counter() - started) / 2
            started = time.perf_counter()
            paint_suite(tmp, Path(tmp) / "galaxies", SuiteGalaxySettings())
            painted = (time.perf_counter() - started) / 2
        print(f"suite box ({config.grid.n}^3 particles, {config.nbody.steps} PM steps, FoF): {per_box:.1f} s per box")
        print(f"galaxies of a box (paint-suite): {painted:.2f} s per box")

    catalogs = load_catalogs(args.galaxies)
    indices = sorted(catalogs)
    sizes = [len(c) for c in catalogs.values()]
    print(f"{len(indices)} catalogs: {min(sizes)}-{max(sizes)} galaxies, median {statistics.median(sizes):.0f}")
    for path in args.model:
        model, meta = load_model(path)
        spec, effects = graph_spec_of(meta), systematics_of(meta)
        settings = TrainSettings(**{**meta["settings"], "max_epochs": 1, "patience": 1})
        train = {i: catalogs[i] for i in indices[:100]}
        validation = {i: catalogs[i] for i in indices[100:110]}
        started = time.perf_counter()
        _, history = train_model(
            train, validation, spec, effects, settings, prior=(meta["prior_low"], meta["prior_high"])
        )
        epoch = history["seconds_per_epoch"]
        setup = time.perf_counter() - started - epoch
        times = []
        generator = torch.Generator().manual_seed(0)
        for index in indices[:20]:
            started = time.perf_counter()
            graphs = build_graphs({index: catalogs[index]}, spec, effects, seed=0)
            estimate(model, graphs, n_samples=1000, generator=generator)
            times.append(time.perf_counter() - started)
        print(
            f"{path.name} ({meta['settings']['head']}, {meta['systematics']}): one epoch of 100 boxes {epoch:.2f} s "
            f"(graph building before it {setup:.2f} s); one catalog's posterior {statistics.median(times) * 1e3:.0f} ms"
        )


if __name__ == "__main__":
    main()
