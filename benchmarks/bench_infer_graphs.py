"""Time the galaxy graph of GNN inference (``cosmoseg.infer.graphs.galaxy_graph``) on uniformly random galaxies.

    python benchmarks/bench_infer_graphs.py                       # 2×10^5 galaxies, ~10 neighbours at r_link 1.25
    python benchmarks/bench_infer_graphs.py --n 50000 --neighbours 20 --velocities los --repeat 3

The box is sized so that each galaxy has ``--neighbours`` others within ``--r-link`` on average
(L = (N (4/3) π r^3 / neighbours)^(1/3)); positions are uniform, velocities Gaussian with 300 km/s per axis, one
property column (log_mstar). Prints the box, the number of directed edges E and the best time of ``--repeat``
calls (the first call, which imports scipy and torch-geometric, is timed apart), then the same for the graph of a
random sub-box of an eighth of the volume.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import torch

from cosmoseg.data import Box, GalaxyCatalog
from cosmoseg.infer.graphs import GraphSpec, galaxy_graph, random_subbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="galaxies")
    parser.add_argument("--neighbours", type=float, default=10.0, help="mean neighbours within r_link")
    parser.add_argument("--r-link", type=float, default=1.25, help="linking length, Mpc/h")
    parser.add_argument("--velocities", default="3d", choices=["none", "3d", "los"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    length = (args.n * 4 / 3 * math.pi * args.r_link**3 / args.neighbours) ** (1 / 3)
    gen = torch.Generator().manual_seed(args.seed)
    columns = {
        "pos": torch.rand((args.n, 3), generator=gen) * length,
        "log_mstar": 9 + 2 * torch.rand(args.n, generator=gen),
    }
    velocities = torch.randn((args.n, 3), generator=gen) * 300
    if args.velocities == "los":
        columns["v_los"] = velocities[:, 2].clone()
    else:
        columns["vel"] = velocities
    catalog = GalaxyCatalog(columns=columns, box=Box(length=length), meta={"los_axis": 2})
    spec = GraphSpec(r_link=args.r_link, velocities=args.velocities, properties=("log_mstar",))
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} torch_threads={torch.get_num_threads()}; "
        f"N={args.n} L={length:.2f} Mpc/h r_link={args.r_link} velocities={args.velocities}"
    )

    def timed(what: str, catalog: GalaxyCatalog) -> None:
        start = time.perf_counter()
        data = galaxy_graph(catalog, spec)
        first = time.perf_counter() - start
        best = math.inf
        for _ in range(args.repeat):
            start = time.perf_counter()
            data = galaxy_graph(catalog, spec)
            best = min(best, time.perf_counter() - start)
        edges = data.edge_index.shape[1]
        print(
            f"{what}: N={data.num_nodes} E={edges} ({edges / data.num_nodes:.2f} per galaxy) "
            f"x={tuple(data.x.shape)} edge_attr={tuple(data.edge_attr.shape)}: galaxy_graph {best:.2f} s "
            f"(best of {args.repeat}; first call {first:.2f} s)"
        )

    timed("full periodic box", catalog)
    timed("sub-box of 1/8 the volume", random_subbox(catalog, 0.125, gen))


if __name__ == "__main__":
    main()
