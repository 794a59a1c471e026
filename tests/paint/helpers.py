"""Toy boxes, suites, fields and networks shared by the paint tests (imported as ``from .helpers import ...``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cosmoseg.data import Box, Cosmology, Field, Particles, save_artifact
from cosmoseg.galaxies._examples import toy_halos  # the paint tests take their haloes from here alone
from cosmoseg.paint.data import PaintBox
from cosmoseg.paint.fields import LOG_UNIT, to_log_mass
from cosmoseg.paint.models import save_paint_model
from cosmoseg.paint.network import Dm2Gal, Dm2GalFCN

TINY = {"channels": (2, 2, 2, 2, 2, 2), "hidden": 4, "large_kernel": 3}
"""A tiny per-voxel dm2gal network (input side 29)."""
FCN_TINY = {"local": 4, "local_layers": 1, "context": 2, "context_layers": 2, "pool": 2, "hidden": 8}
"""A tiny successor."""
SMALL = {"channels": (2,) * 6, "large_kernel": 3, "hidden": 4}
"""A small clean dm2gal geometry: kernel 3, input 37 -> 35 -> 17 -> 15 -> 7 -> 5 -> 2 (a 2³ flatten)."""
SMALL_SIZE = 37
FCN_SMALL = {"local": 2, "local_layers": 1, "context": 2, "context_layers": 2, "pool": 2, "hidden": 4}
N = 16
LENGTH = 32.0


def synthetic_box(seed: int, n: int = N) -> PaintBox:
    """A box whose truth is a function of the inputs: galaxies where the halo field is set, M* = 1% of the DM."""
    g = torch.Generator().manual_seed(seed)
    dm = (0.5 + torch.rand(n, n, n, generator=g)) * 1e12
    occupied = torch.rand(n, n, n, generator=g) < 0.05
    halo = torch.where(occupied, torch.full_like(dm, 1e13), torch.zeros_like(dm))
    mstar = torch.where(occupied, 0.01 * dm, torch.zeros_like(dm))
    return PaintBox(f"box_{seed:04d}.h5", LENGTH, torch.stack([to_log_mass(dm), to_log_mass(halo)]),
                    to_log_mass(mstar), None, None)  # type: ignore[arg-type]  # fmt: skip


def toy_suite(folder: Path, n_boxes: int = 4, n_grid: int = 16) -> Path:
    """``n_boxes`` suite files of ``n_grid``³ particles (jittered grid, 10^12 Msun/h each) and 150 toy haloes."""
    for i in range(n_boxes):
        g = torch.Generator().manual_seed(100 + i)
        halos = toy_halos(g, n=150)
        box = halos.box
        cell = box.length / n_grid
        axis = (torch.arange(n_grid, dtype=torch.float64) + 0.5) * cell
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        pos = (grid + 0.3 * cell * torch.randn(grid.shape, generator=g, dtype=torch.float64)) % box.length
        particles = Particles(pos=pos.float(), vel=torch.zeros_like(pos).float(), ids=torch.arange(n_grid**3),
                              mass=1e12, box=Box(length=box.length), n_grid=n_grid)  # fmt: skip
        save_artifact(folder / f"box_{i:04d}.h5", {"particles": particles, "halos": halos})
    return folder


def successor_file(path: Path, voxel: float, *, bright: bool = True, **extra: object) -> Path:
    """An untrained tiny successor saved at ``path`` for voxels of ``voxel`` Mpc/h (threshold 10^8 Msun/h);
    ``bright``: its head paints stellar masses around 10^10 (an untrained head paints ~1 Msun/h); ``extra``: more
    arguments of ``save_paint_model`` (card, halo_assignment, particle_mass, ...)."""
    torch.manual_seed(0)
    model = Dm2GalFCN(**FCN_TINY)
    if bright:
        with torch.no_grad():
            model.head.bias[1 + model.components : 1 + 2 * model.components] = 10.0
    return save_paint_model(path, model.eval(), voxel=voxel, threshold=1e8, step=1, **{"card": {}, **extra})


def per_voxel_file(path: Path, voxel: float) -> Path:
    """An untrained tiny per-voxel dm2gal network saved at ``path``."""
    torch.manual_seed(0)
    model = Dm2Gal(**TINY, input_size=29)
    return save_paint_model(path, model.eval(), voxel=voxel, threshold=1e8, step=1, card={})


def toy_fields(
    n: int = N,
    voxel: float = 2.0,
    *,
    truth: bool = True,
    assignment: str = "ngp",
    particle_mass: float | None = None,
    cosmology: Cosmology | None = None,
) -> Field:
    """paint.fields-like fields: DM 10^11–10^12 per voxel, haloes of 10^12.5 in 5% of the voxels, and (``truth``) a
    galaxy of 10^10.3 in each; meta: the halo assignment and, when given, the particle mass."""
    g = torch.Generator().manual_seed(3)
    dm = 11.0 + torch.rand((n, n, n), generator=g)
    halo = torch.where(torch.rand((n, n, n), generator=g) < 0.05, 12.5, 0.0)
    channels = [dm, halo] + ([torch.where(halo > 0, 10.3, 0.0)] if truth else [])
    names = ("log_dm", "log_halo", "log_mstar")[: len(channels)]
    meta = {"assignment_log_halo": assignment} | ({} if particle_mass is None else {"particle_mass": particle_mass})
    box = Box(length=n * voxel, cosmology=cosmology or Cosmology())
    return Field(values=torch.stack(channels), box=box, channels=names, units=(LOG_UNIT,) * len(channels), meta=meta)


def randomise_bn(model: nn.Module, seed: int) -> None:
    """Non-trivial batch-norm running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=gen) * 0.3)


def small_net(seed: int = 0, **kwargs: object) -> Dm2Gal:
    """A :data:`SMALL` dm2gal network in eval mode with random batch-norm statistics."""
    torch.manual_seed(seed)
    params = {**SMALL, "input_size": SMALL_SIZE, **kwargs}
    net = Dm2Gal(**params)
    randomise_bn(net, seed + 1)
    return net.eval()


def random_fields(n: int, seed: int = 0) -> torch.Tensor:
    """(2, n, n, n) standard-normal inputs."""
    return torch.randn((2, n, n, n), generator=torch.Generator().manual_seed(seed))
