"""Joint samplers of p(galaxy properties | halo properties) behind one interface (:mod:`.base`)."""

from cosmoseg.galaxies.samplers.base import JointSampler, Standardizer, catalog_matrix, load_sampler

__all__ = ["JointSampler", "Standardizer", "catalog_matrix", "load_sampler"]
