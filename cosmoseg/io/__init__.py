"""Readers and writers of other people's formats, registered through ``cosmoseg_register_readers``.

- ``read_gadget_snapshot``: Gadget-4 / AREPO / TNG HDF5 snapshots -> ``Particles`` ("gadget-hdf5"), with a
  total-mass check; ``lagrangian_grid_ids`` maps lattice ids (numbered from any first id, ``IDS_TO_GRID_MODES``)
  to Lagrangian grid ids.
- ``read_group_catalog``, ``read_tng_groups``, ``read_tng_subhalos``: FoF / Subfind group catalogs of TNG, AREPO
  and Gadget-4 (any NTYPES, FoF-only ``fof_tab`` too) -> ``HaloCatalog`` ("tng-groups", "tng-subhalos");
  ``read_tng_galaxies`` -> ``GalaxyCatalog`` ("tng-galaxies").
- ``read_npy_cube``, ``read_hdf5_cube``: plain grids -> ``Field`` ("npy-cube", "hdf5-cube").
"""

from cosmoseg.io.cubes import read_hdf5_cube, read_npy_cube
from cosmoseg.io.gadget import IDS_TO_GRID_MODES, lagrangian_grid_ids, read_gadget_snapshot
from cosmoseg.io.tng import read_group_catalog, read_tng_galaxies, read_tng_groups, read_tng_subhalos

__all__ = [
    "IDS_TO_GRID_MODES",
    "lagrangian_grid_ids",
    "read_gadget_snapshot",
    "read_group_catalog",
    "read_hdf5_cube",
    "read_npy_cube",
    "read_tng_galaxies",
    "read_tng_groups",
    "read_tng_subhalos",
]
