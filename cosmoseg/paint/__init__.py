"""dm2gal (Kasmanoff et al. 2020): painting stellar mass onto the dark-matter and (sub)halo fields of a DM-only run.

A 3D CNN reads a two-channel cube — the dark-matter mass field and the mass-weighted (sub)halo field — and predicts
the stellar mass of its central voxel; sliding it over a box paints the stellar-mass field. Modules:

* :mod:`cosmoseg.paint.fields` — the fields (Msun/h per voxel on one periodic grid) and the one place of the
  transform log10(1 + M) and its inverse;
* :mod:`cosmoseg.paint.network`, :mod:`cosmoseg.paint.tiling` — the networks, and predicting a box in tiles;
* :mod:`cosmoseg.paint.models` — model files and the checks of fields against them;
* :mod:`cosmoseg.paint.painting` — painting a box with a successor model file (what ``paint.dm2gal`` runs);
* :mod:`cosmoseg.paint.data`, :mod:`cosmoseg.paint.suite`, :mod:`cosmoseg.paint.sampling`,
  :mod:`cosmoseg.paint.training` — suite boxes, their split and truth, and training;
* :mod:`cosmoseg.paint.baselines`, :mod:`cosmoseg.paint.evaluation`, :mod:`cosmoseg.paint.report`,
  :mod:`cosmoseg.paint.figures` — the baselines, the statistics, the held-out comparison and its figures;
* :mod:`cosmoseg.paint.stages`, :mod:`cosmoseg.paint.commands` — the plugin face (``paint.fields``,
  ``paint.dm2gal``) and ``cosmoseg paint``.

Like every science package it prints nothing and imports none of ``protohalo``, ``galaxies`` or ``infer``: a galaxy
catalog (from the galaxy model or from real TNG catalogs via the readers) reaches it as a ``GalaxyCatalog``.
"""
