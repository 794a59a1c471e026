"""dm2gal (Kasmanoff et al. 2020): painting stellar mass onto the dark-matter and (sub)halo fields of a DM-only run.

A 3D CNN reads a two-channel cube — the dark-matter mass field and the mass-weighted (sub)halo field — and predicts
the stellar mass of its central voxel; sliding it over a box paints the stellar-mass field. Modules:

* :mod:`cosmoseg.paint.fields` — the fields (Msun/h per voxel on one periodic grid) and the one place of the
  transform log10(1 + M) and its inverse;
* :mod:`cosmoseg.paint.stages` — the plugin face (``paint.fields``, ...).

Like every science package it prints nothing and imports none of ``protohalo``, ``galaxies`` or ``infer``: a galaxy
catalog (from the galaxy model or from real TNG catalogs via the readers) reaches it as a ``GalaxyCatalog``.
"""
