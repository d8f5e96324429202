"""The package version (kept in core so that every layer can read it)."""
__version__ = "0.1.0"
