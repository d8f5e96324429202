"""The ``emu`` backend of tests/test_kernels_cuda.py: minitl's CUDA kernels
compiled for the CPU (csrc/cuda/emu/build.py) and NumPy arrays that pose as
CuPy ones, so minitl/kernels/cuda.py drives them unchanged.

The posing arrays live on fake devices (``dev_array(a, device=1)``): a
``FakeDevice`` is a context manager like ``cupy.cuda.Device``, each device
has its own current stream (``stream_ptr(d)``), ``empty`` allocates on the
current device, and making a device current also makes it current in the
emulated CUDA runtime, as CuPy's ``cudaSetDevice`` does for our static one.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import importlib.util
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_state = {"device": 0, "hooks": None}  # CuPy's current device; the emu's ctypes hooks


def stream_ptr(device: int) -> int:
    """The fake current stream of ``device`` (never dereferenced by the emulator)."""
    return 0x1000 * (device + 1)


def current_device() -> int:
    return _state["device"]


def _set_current(device: int) -> None:
    _state["device"] = device
    if _state["hooks"] is not None:
        _state["hooks"].emu_set_device(device)


class FakeDevice:
    """What minitl uses of ``cupy.cuda.Device``: ``.id`` and ``with``."""

    def __init__(self, id: int):
        self.id = id
        self._saved = []

    def __enter__(self):
        self._saved.append(current_device())
        _set_current(self.id)
        return self

    def __exit__(self, *exc):
        _set_current(self._saved.pop())
        return False


class _DevArray(np.ndarray):
    """A NumPy array answering ``.data.ptr`` and ``.device`` as CuPy's do."""

    def __array_finalize__(self, obj):
        self._dev = getattr(obj, "_dev", current_device())

    @property
    def data(self):
        return SimpleNamespace(ptr=self.ctypes.data)

    @property
    def device(self):
        return FakeDevice(self._dev)


_DevArray.__module__ = "cupy_emulated"  # cuda.py's in-place check looks for "cupy"


def dev_array(a, dtype=None, device=None):
    """``a`` as a posing array on ``device`` (default: ``a``'s, else the current one)."""
    dev = device if device is not None else getattr(a, "_dev", current_device())
    out = np.ascontiguousarray(a, dtype=dtype).view(_DevArray)
    out._dev = dev
    return out


def _empty(shape, dtype):
    return dev_array(np.empty(shape, dtype))


FAKE_CUPY = SimpleNamespace(
    float32=np.dtype(np.float32), float64=np.dtype(np.float64), int64=np.int64,
    ascontiguousarray=dev_array, empty=_empty,
    cuda=SimpleNamespace(get_current_stream=lambda: SimpleNamespace(ptr=stream_ptr(current_device())),
                         Device=lambda id=None: FakeDevice(current_device() if id is None else id)),
)


@functools.lru_cache(maxsize=None)
def _module_path() -> str:
    """Build (once, cached under build/ by source hash) _C_cuda_emu; its path."""
    files = sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*"))
                   + glob.glob(os.path.join(ROOT, "csrc", "cuda", "emu", "*")))
    digest = hashlib.sha1()
    for f in files:
        if os.path.isfile(f):
            with open(f, "rb") as fh:
                digest.update(f.encode() + fh.read())
    out = os.path.join(ROOT, "build", "cuda_emu", digest.hexdigest()[:16])
    found = glob.glob(os.path.join(out, "_C_cuda_emu*.so"))
    if not found:
        builder = _load("minitl_cuda_emu_build", os.path.join(ROOT, "csrc", "cuda", "emu", "build.py"))
        found = [builder.build(out)]
    return found[0]


@functools.lru_cache(maxsize=None)
def _loaded():
    return _load("_C_cuda_emu", _module_path())


def emu_module():
    """The imported _C_cuda_emu (skips the test when it cannot be built here)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot build the CPU emulation of the CUDA kernels")
    pytest.importorskip("pybind11")
    mod = _loaded()
    emu_hooks()
    return mod


def emu_hooks():
    """The emulator's test hooks (csrc/cuda/emu/emu.cpp, ``extern "C"``) via ctypes.

    The same shared object Python imported, so they act on its state.
    """
    if _state["hooks"] is None:
        lib = ctypes.CDLL(_module_path())
        lib.emu_get_device.restype = ctypes.c_int
        lib.emu_set_max_grid_y.argtypes = [ctypes.c_uint]
        _state["hooks"] = lib
    return _state["hooks"]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
