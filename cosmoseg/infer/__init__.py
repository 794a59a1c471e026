"""Inference of cosmological parameters (Ω_m, σ_8) from galaxy catalogs with graph neural networks.

After de Santi et al. 2023 ("Robust field-level likelihood-free inference with galaxies") and CosmoGraphNet
(Villanueva-Domingo & Villaescusa-Navarro 2022): a galaxy catalog becomes a periodic radius graph with invariant
node, edge and global features (:mod:`cosmoseg.infer.graphs`), optionally after observational systematics
(:mod:`cosmoseg.infer.systematics`); a message-passing network maps it to a posterior (:mod:`cosmoseg.infer.models`).

Like every science package it prints nothing and imports none of ``protohalo``, ``galaxies`` or ``paint``: the galaxy
catalogs it learns from are files (``cosmoseg galaxies paint-suite``).
"""
