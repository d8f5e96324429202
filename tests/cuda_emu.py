"""The ``emu`` backend of tests/test_kernels_cuda.py: minitl's CUDA kernels
compiled for the CPU (csrc/cuda/emu/build.py) and NumPy arrays that pose as
CuPy ones, so minitl/kernels/cuda.py drives them unchanged."""
from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _DevArray(np.ndarray):
    """A NumPy array answering ``.data.ptr`` and ``.device.id`` as CuPy's do."""

    @property
    def data(self):
        return SimpleNamespace(ptr=self.ctypes.data)

    @property
    def device(self):
        return SimpleNamespace(id=0)


_DevArray.__module__ = "cupy_emulated"  # cuda.py's in-place check looks for "cupy"


def dev_array(a, dtype=None):
    return np.ascontiguousarray(a, dtype=dtype).view(_DevArray)


FAKE_CUPY = SimpleNamespace(
    float32=np.dtype(np.float32), float64=np.dtype(np.float64), int64=np.int64,
    ascontiguousarray=dev_array, empty=lambda shape, dtype: np.empty(shape, dtype).view(_DevArray),
    cuda=SimpleNamespace(get_current_stream=lambda: SimpleNamespace(ptr=0),
                         Device=lambda: SimpleNamespace(id=0)),
)


def emu_module():
    """Build (once, cached under build/ by source hash) and import _C_cuda_emu."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot build the CPU emulation of the CUDA kernels")
    pytest.importorskip("pybind11")
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
    return _load("_C_cuda_emu", found[0])


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
