"""Tiny inputs for the galaxy stages' contract examples (``example_inputs``) and for tests: not part of the library.

Production code never imports :mod:`cosmoseg.testing`, so the galaxy stages build their own toy haloes here.
"""

from __future__ import annotations

import torch

from cosmoseg.data import Box, HaloCatalog

__all__ = ["toy_halos"]


def toy_halos(generator: torch.Generator, n: int = 300) -> HaloCatalog:
    """Haloes of 10^11.5–10^14.5 Msun/h with the columns the galaxy stages use, in a 100 Mpc/h box."""
    log_mass = 11.5 + 3.0 * torch.rand(n, generator=generator, dtype=torch.float64)
    columns = {
        "pos": 100.0 * torch.rand((n, 3), generator=generator, dtype=torch.float64),
        "vel": 300.0 * torch.randn((n, 3), generator=generator, dtype=torch.float64),
        "mass": 10.0**log_mass,
        "vmax": 10.0 ** (2.0 + (log_mass - 12.0) / 3.0),
        "concentration": 5.0 + torch.rand(n, generator=generator, dtype=torch.float64) * 5.0,
        "spin": 0.01 + 0.06 * torch.rand(n, generator=generator, dtype=torch.float64),
        "log_env_density_r2": torch.randn(n, generator=generator, dtype=torch.float64),
    }
    return HaloCatalog(columns=columns, box=Box(length=100.0))
