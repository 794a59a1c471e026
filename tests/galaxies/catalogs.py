"""Helpers shared by the galaxy tests: comparing catalogs bit for bit."""

from __future__ import annotations

import torch

from cosmoseg.data import GalaxyCatalog


def same_catalog(a: GalaxyCatalog, b: GalaxyCatalog) -> bool:
    """Same columns (names, dtypes, values bit for bit), box and meta."""
    return (
        list(a.columns) == list(b.columns)
        and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a.columns)
        and a.box == b.box
        and a.meta == b.meta
    )
