"""Array modules and devices: ``xp`` is NumPy on ``'cpu'`` and CuPy on ``'cuda'``.

CuPy is imported lazily, the first time something asks for the GPU, and the
reason it could not be used is remembered so that ``minitl.cuda.why_unavailable()``
can say it in one line (the approach of Chainer's ``backends/cuda.py``).
"""
from __future__ import annotations

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy = None
_cuda_reason: str | None = None
_probed = False


def _probe_cuda() -> None:
    """Import CuPy and look for a usable device once; remember why not."""
    global _cupy, _cuda_reason, _probed
    if _probed:
        return
    _probed = True
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken install raising anything
        _cuda_reason = f"CuPy is not installed or failed to import ({exc.__class__.__name__}: {exc})"
        return
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        _cuda_reason = f"CuPy is installed but no CUDA driver answered ({exc})"
        return
    if count < 1:
        _cuda_reason = "CuPy and the CUDA driver are present but no GPU was found"
        return
    _cupy = cupy


def cuda_available() -> bool:
    """True when CuPy imports and at least one GPU answers."""
    _probe_cuda()
    return _cupy is not None


def cuda_unavailable_reason() -> str | None:
    """One line saying why the GPU cannot be used, or None when it can."""
    _probe_cuda()
    return _cuda_reason


def cupy():
    """The CuPy module; a clear RuntimeError when the GPU is unavailable."""
    if not cuda_available():
        raise RuntimeError(f"device 'cuda' is unavailable: {_cuda_reason}")
    return _cupy


def normalize_device(device) -> str:
    """Map ``'cpu'``, ``'cuda'``, ``'cuda:0'`` (or a Device-like with ``.type``) to a name."""
    name = str(getattr(device, "type", device)).lower()
    if name.startswith("cuda"):
        return "cuda"
    if name != "cpu":
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    return name


def is_cupy_array(a) -> bool:
    """True for a CuPy ndarray, without importing CuPy."""
    # A NumPy array is the common case: told by its type, with no string work.
    return type(a) is not _ndarray and type(a).__module__.startswith("cupy")


def device_of(a) -> str:
    """``'cuda'`` for CuPy arrays, ``'cpu'`` otherwise."""
    return "cpu" if type(a) is _ndarray else ("cuda" if type(a).__module__.startswith("cupy") else "cpu")


_ndarray = np.ndarray


def xp_for(device: str):
    """The array module of ``device``."""
    return cupy() if normalize_device(device) == "cuda" else np


def get_array_module(*arrays):
    """NumPy, or CuPy if any of ``arrays`` lives on the GPU."""
    for a in arrays:
        if is_cupy_array(a):
            return _cupy
    return np


def quiet_errors(xp, **kinds):
    """``numpy.errstate(**kinds)`` for NumPy (e.g. ``over='ignore'``); a no-op for CuPy,
    which does not warn."""
    import contextlib

    return np.errstate(**kinds) if xp is np else contextlib.nullcontext()


def to_device(a, device: str):
    """Move a raw array to ``device`` (no copy when it is already there)."""
    device = normalize_device(device)
    if device == "cuda":
        return cupy().asarray(a)
    if is_cupy_array(a):
        return a.get()
    return np.asarray(a)
