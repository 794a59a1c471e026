"""cosmoseg: from cosmological initial conditions to galaxies, as pipelines of plugin stages.

The public API re-exports the data model, the stage base class, the plugin markers and the runner.
"""

from cosmoseg._version import __version__
from cosmoseg.data import (
    Box,
    Catalog,
    Cosmology,
    Field,
    GalaxyCatalog,
    HaloCatalog,
    ParameterEstimate,
    Particles,
    Segmentation,
    Table,
    load_artifact,
    save_artifact,
)
from cosmoseg.errors import (
    ArtifactError,
    ConfigError,
    CosmosegError,
    PluginError,
    StageError,
    ValidationError,
)
from cosmoseg.hookspecs import hookimpl
from cosmoseg.pipeline import RunContext, Stage, load_config, param
from cosmoseg.plugins import build_registry, run_pipeline

__all__ = [
    "ArtifactError",
    "Box",
    "Catalog",
    "ConfigError",
    "Cosmology",
    "CosmosegError",
    "Field",
    "GalaxyCatalog",
    "HaloCatalog",
    "ParameterEstimate",
    "Particles",
    "PluginError",
    "RunContext",
    "Segmentation",
    "Stage",
    "StageError",
    "Table",
    "ValidationError",
    "__version__",
    "build_registry",
    "hookimpl",
    "load_artifact",
    "load_config",
    "param",
    "run_pipeline",
    "save_artifact",
]
