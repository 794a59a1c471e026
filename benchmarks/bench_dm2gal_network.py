"""Time the per-voxel dm2gal network against its fully convolutional successor, and count their parameters.

    python benchmarks/bench_dm2gal_network.py [--threads 2] [--device cpu|cuda] [--crops 32] [--boxes 32 64]
                                              [--tile 32] [--repeat 2] [--target 128] [--channels 6 ints]
                                              [--hidden H] [--model successor.pt] [--per-voxel dm2gal.pt]

dm2gal: default channels (8, 8, 16, 16, 32, 32), large kernel 7, hidden 64, 65³ input (or ``--channels`` /
``--hidden``, or the architecture of a ``--per-voxel`` model file); the successor: its defaults or ``--model``.
Random weights unless a model file is given (speed does not depend on them), float32, eval mode,
``torch.inference_mode()``.

* ``Dm2Gal``: ``predict_voxels`` on ``--crops`` voxels in one batch (65³ periodic crops each) -> seconds per voxel.
* ``Dm2GalFCN``: ``predict_tiled`` of whole ``n³`` boxes (tile ``min(--tile, n)``) -> seconds per box and per voxel.

Both are extrapolated linearly in the voxel count to a ``--target``³ grid (printed as extrapolated). Best of
``--repeat`` after one warm-up call.
"""

from __future__ import annotations

import argparse
import time

import torch

from cosmoseg.paint.network import Dm2Gal, Dm2GalFCN
from cosmoseg.paint.tiling import predict_tiled, predict_voxels


def _best(fn: object, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--boxes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--tile", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--target", type=int, default=128)
    parser.add_argument("--channels", type=int, nargs=6, default=None, help="block channels (default: the network's)")
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--model", default=None, help="a successor model file: time its architecture")
    parser.add_argument("--per-voxel", default=None, help="a dm2gal model file: time its architecture")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    arch: dict[str, object] = {}
    if args.per_voxel:
        from cosmoseg.paint.models import load_paint_model

        arch = dict(load_paint_model(args.per_voxel)[1]["arch"])
    if args.channels:
        arch["channels"] = tuple(args.channels)
    if args.hidden:
        arch["hidden"] = args.hidden
    net, fcn = Dm2Gal(**arch).to(device).eval(), Dm2GalFCN().to(device).eval()
    if args.model:
        from cosmoseg.paint.models import load_paint_model

        fcn = load_paint_model(args.model)[0].to(device).eval()
    print(f"dm2gal architecture: {arch or 'defaults'}; successor: {fcn.arch()}")
    count = {name: sum(p.numel() for p in m.parameters()) for name, m in [("Dm2Gal", net), ("Dm2GalFCN", fcn)]}
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    print(f"parameters: Dm2Gal {count['Dm2Gal']:,}  Dm2GalFCN {count['Dm2GalFCN']:,}")
    target = args.target**3

    fields = torch.randn(2, 64, 64, 64, device=device)
    voxels = torch.randint(0, 64, (args.crops, 3), device=device)
    t = _best(lambda: predict_voxels(net, fields, voxels, batch=args.crops), args.repeat)
    per_voxel = t / args.crops
    print(
        f"Dm2Gal: {args.crops} crops of 65^3 in {t:.3f} s -> {per_voxel * 1e3:.2f} ms/voxel; "
        f"{args.target}^3 grid EXTRAPOLATED: {per_voxel * target:.3g} s ({per_voxel * target / 3600:.3g} h)"
    )
    for n in args.boxes:
        box = torch.randn(2, n, n, n, device=device)
        tile = min(args.tile, n)
        t = _best(lambda box=box, tile=tile: predict_tiled(fcn, box, tile=tile), args.repeat)
        fcn_voxel = t / n**3
        print(
            f"Dm2GalFCN: {n}^3 box (tile {tile}) in {t:.3f} s -> {fcn_voxel * 1e6:.2f} us/voxel; "
            + (
                f"{args.target}^3 grid MEASURED: {t:.3g} s"
                if n == args.target
                else f"{args.target}^3 grid EXTRAPOLATED: {fcn_voxel * target:.3g} s"
            )
            + "; per-voxel speed-up "
            f"{per_voxel / fcn_voxel:.0f}x"
        )


if __name__ == "__main__":
    main()
