"""Weight files: ``.safetensors`` (our own codec) and ``.npz`` (never pickled),
with provenance metadata and atomic writes. See :mod:`minitl.io.weights`."""
from . import safetensors
from .weights import (FORMATS, METADATA_KEY, atomic_write, load, load_metadata, load_with_metadata, provenance,
                      save)

__all__ = ["save", "load", "load_metadata", "load_with_metadata", "provenance", "atomic_write", "FORMATS",
           "METADATA_KEY", "safetensors"]
