"""Halo → galaxy: the galaxy model used as truth, the HOD, and learned joint samplers (Abramo et al.)."""
