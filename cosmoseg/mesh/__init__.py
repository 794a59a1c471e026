"""Periodic-grid primitives shared by every package: mass assignment, k-grids, tides, the Lagrangian grid convention."""

from cosmoseg.mesh.assign import SCHEME_ORDERS, paint, paint_cic, paint_fourier, readout, readout_cic, window
from cosmoseg.mesh.fourier import fundamental_frequency, nyquist_frequency, rfft_k_magnitude, rfft_mode_weights
from cosmoseg.mesh.grid import cell_centers, grid_cell_centers, ids_to_ijk, ijk_to_ids
from cosmoseg.mesh.symmetry import (
    apply_symmetry,
    compose_symmetries,
    cube_symmetries,
    invert_symmetry,
    transform_positions,
)
from cosmoseg.mesh.tidal import tidal_shear, tidal_shear_from_tensor, tidal_tensor

__all__ = [
    "SCHEME_ORDERS",
    "apply_symmetry",
    "cell_centers",
    "compose_symmetries",
    "cube_symmetries",
    "fundamental_frequency",
    "grid_cell_centers",
    "ids_to_ijk",
    "ijk_to_ids",
    "invert_symmetry",
    "nyquist_frequency",
    "paint",
    "paint_cic",
    "paint_fourier",
    "readout",
    "readout_cic",
    "rfft_k_magnitude",
    "rfft_mode_weights",
    "tidal_shear",
    "tidal_shear_from_tensor",
    "tidal_tensor",
    "transform_positions",
    "window",
]
