"""Speed of a protohalo mass-bin net (issue #22): one training step, and the whole-box class probabilities.

    python benchmarks/bench_mass_bins.py runs/ph-massbins/mass-bins.pt [--n 64 128] [--device cpu|cuda] [--repeat 1] \
        [--grad-cam]

The boxes are n³ cells at the checkpoint's cell size with 2LPT initial conditions of its training cosmology
(Eisenstein–Hu power spectrum, seed 1); the time of ``panoptic.mass_bin_probabilities`` (one crop lattice, batch
4) is the best of ``--repeat`` calls after a warm-up, the channels (``protohalo.data.linear_channels``, the shear by
FFT) reported apart. The training step is forward, backward and Adam of the checkpoint's architecture (fresh
weights) on two random crops (``bench_protohalo.time_train_step``). With ``--grad-cam``, one whole-box Grad-CAM of
the top class (``classify.mass_bin_grad_cam`` on the calibrated classes, what the ``protohalo.mass_bins`` stage adds)
is timed too.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from bench_protohalo import PAPER_COSMOLOGY, synchronize, time_train_step  # the sibling script (benchmarks/)

from cosmoseg import Cosmology
from cosmoseg.protohalo.classify import mass_bin_grad_cam, predicted_classes
from cosmoseg.protohalo.data import linear_channels
from cosmoseg.protohalo.panoptic import mass_bin_probabilities
from cosmoseg.protohalo.training import load_model
from cosmoseg.sim.ics import initial_conditions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a mass-bins checkpoint of cosmoseg protohalo train")
    parser.add_argument("--n", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--grad-cam", action="store_true", help="also time the whole-box Grad-CAM of the top class")
    args = parser.parse_args()
    device = torch.device(args.device)
    model, meta = load_model(args.checkpoint, "mass-bins", device=args.device)
    cell = float(meta["box_length"]) / int(meta["grid_n"])
    report = {
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "backbone": meta.get("backbone", "vnet"),
        "channels": meta["channels"],
        **time_train_step(meta, 2, device, max(args.repeat, 1)),
    }
    cosmology = Cosmology(**PAPER_COSMOLOGY, power_backend="eisenstein-hu")
    for n in args.n:
        fields = initial_conditions(cosmology, n=n, length=n * cell, seed=1).fields
        start = time.perf_counter()
        values = linear_channels(fields, meta["channels"])
        channels_s = time.perf_counter() - start
        times = []
        for _ in range(args.repeat + 1):  # the first call warms up
            synchronize(device)
            start = time.perf_counter()
            probabilities = mass_bin_probabilities(
                values, model, size_in=int(meta["size_in"]), size_out=int(meta["size_out"]), device=device
            )
            synchronize(device)
            times.append(time.perf_counter() - start)
        report[f"predict_{n}_s"] = round(min(times[1:] or times), 3)
        report[f"channels_{n}_s"] = round(channels_s, 3)
        if args.grad_cam:
            start = time.perf_counter()
            lattice = {"size_in": int(meta["size_in"]), "size_out": int(meta["size_out"])}
            classes = predicted_classes(probabilities, meta.get("class_log_bias"))  # the stage's classes
            mass_bin_grad_cam(values, model, int(meta["n_mass_bins"]), classes=classes, device=device, **lattice)
            synchronize(device)
            report[f"grad_cam_{n}_s"] = round(time.perf_counter() - start, 3)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
