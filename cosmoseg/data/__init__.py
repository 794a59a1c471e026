"""The data model: frozen dataclasses of torch tensors with fixed units and an HDF5 round-trip."""

from cosmoseg.data._base import DATA_TYPES, SCHEMA_VERSION, DataObject
from cosmoseg.data.box import Box
from cosmoseg.data.cosmology import COSMOLOGY_PARAMETERS, Cosmology, cosmology_differences, cosmology_problems
from cosmoseg.data.estimate import ParameterEstimate
from cosmoseg.data.field import Field
from cosmoseg.data.hdf5 import (
    atomic_write,
    count_rows,
    load_artifact,
    load_rows,
    open_artifact,
    read_object,
    save_artifact,
)
from cosmoseg.data.particles import Particles
from cosmoseg.data.segmentation import Segmentation
from cosmoseg.data.table import Catalog, GalaxyCatalog, HaloCatalog, Table

__all__ = [
    "COSMOLOGY_PARAMETERS",
    "DATA_TYPES",
    "SCHEMA_VERSION",
    "Box",
    "Catalog",
    "Cosmology",
    "DataObject",
    "Field",
    "GalaxyCatalog",
    "HaloCatalog",
    "ParameterEstimate",
    "Particles",
    "Segmentation",
    "Table",
    "atomic_write",
    "cosmology_differences",
    "cosmology_problems",
    "count_rows",
    "load_artifact",
    "load_rows",
    "open_artifact",
    "read_object",
    "save_artifact",
]
