"""The package version, in a module of its own so that any part of cosmoseg can read it without importing the
package root (``data`` writes it into every artifact)."""

__version__ = "0.1.0"
