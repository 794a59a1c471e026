"""Joint samplers of p(galaxy properties | halo properties) behind one interface (:mod:`.base`)."""

from cosmoseg.galaxies.samplers.base import JointSampler, Standardizer, load_sampler

__all__ = ["JointSampler", "Standardizer", "load_sampler"]
