"""Fixtures and checks shared by the CUDA kernel tests (tests/test_kernels_cuda*.py).

Each kernel test runs on two backends:

* ``gpu`` (marked ``gpu``, skipped without one): CuPy arrays through
  ``minitl.kernels.cuda`` and the real extension;
* ``emu``: the same ``.cu`` sources compiled for the CPU by
  ``csrc/cuda/emu/build.py`` (each CUDA thread a fiber, barriers and warp
  shuffles honoured), driven through the same Python wrappers with NumPy
  arrays posing as CuPy ones. It checks the kernels' indexing and reductions
  on machines without a GPU; it cannot check timing, memory model or PTX.

The fixtures swap the extension, CuPy and the test hooks in
``minitl.kernels.cuda_base``, which every op wrapper reads at call time.
Outputs are poisoned with NaN before each run (``_POISON``), inputs are
fresh random numbers (never zeros), and float32 results must satisfy
``||out - ref|| / ||ref|| < 1e-5`` against the reference in float64
(float64 kernels: 1e-12). Import needs neither CuPy nor a GPU.
"""
from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import strategies as st

from cuda_emu import FAKE_CUPY, dev_array, emu_hooks, emu_module
from minitl.core import backend
from minitl.kernels import cuda
from minitl.kernels import cuda_base as base

ACTS = [None, "relu", "tanh", "sigmoid"]
DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-12}

# What the fixtures swap, as found at import (before any fixture ran): the
# real extension (or None), CuPy (or None) and the test hooks' defaults.
_PRISTINE = {**{k: getattr(base, k) for k in ("_C", "_cp", "_POISON", "_SPLITS")},
             "xp": backend._cupy}



@contextlib.contextmanager
def _swapped(**values):
    """Set attributes of minitl.kernels.cuda_base (``xp``: backend._cupy); restore after."""
    saved = {k: getattr(base, k) for k in values if k != "xp"}
    saved_xp = backend._cupy
    for k, v in values.items():
        if k == "xp":
            backend._cupy = v
        else:
            setattr(base, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(base, k, v)
        backend._cupy = saved_xp


def _emu_state():
    """The emu backend: the emulated extension on the posing arrays, runtime reset."""
    mod = emu_module()
    emu_hooks().emu_reset()
    mod.set_sync_launches(0)
    # Reference code run on the posing arrays (e.g. a pool > 4 fallback) runs on NumPy.
    return _swapped(_C=mod, _cp=FAKE_CUPY, xp=np)


# ------------------------------------------------------------------ backends
@pytest.fixture(scope="module", params=["emu", pytest.param("gpu", marks=pytest.mark.gpu)])
def dev(request):
    """(kernels module, to_device, to_host) for one backend.

    Module-scoped (hypothesis forbids function-scoped fixtures in @given
    tests), so it stays set up until pytest switches params or the module
    ends: tests that do not ask for it may still run under its hooks. The
    GPU-only tests below therefore use the ``gpu`` fixture, which resets them.
    """
    if request.param == "gpu":
        cp = pytest.importorskip("cupy")
        if not base.AVAILABLE:
            pytest.skip(base.STATUS)
        chosen = SimpleNamespace(k=cuda, to_dev=cp.asarray, to_host=cp.asnumpy, name="gpu")
        state = _swapped(_POISON=True)
    else:
        state = _emu_state()
        chosen = SimpleNamespace(k=cuda, to_dev=dev_array, to_host=np.asarray, name="emu")
    with state, _swapped(_POISON=True):
        yield chosen


@contextlib.contextmanager
def _pristine_cuda():
    """minitl.kernels.cuda_base as imported: the real extension and CuPy, hooks off."""
    with _swapped(**_PRISTINE):
        yield


@pytest.fixture
def gpu():
    """(cupy, minitl.kernels.cuda) with the real extension and the hooks at their
    defaults, whatever ``dev`` left set up: its ``_POISON = True`` made every
    output cost CuPy a fill kernel, which the launch-count test then counted."""
    cp = pytest.importorskip("cupy")
    if not base.AVAILABLE:
        pytest.skip(base.STATUS)
    with _pristine_cuda():
        yield cp, cuda


@pytest.fixture
def emu():
    """(minitl.kernels.cuda on the emulator, the emulator's ctypes hooks), per test."""
    with _emu_state():
        yield cuda, emu_hooks()
    emu_hooks().emu_reset()


# ------------------------------------------------------------------- helpers
def _rand(rng, shape, dtype):
    """Random normal values rounded to ``dtype``, returned as float64."""
    return rng.standard_normal(shape).astype(dtype).astype(np.float64)


def _check(what, got, want, dtype, condition=None):
    """||got - want|| <= TOL * ||want||.

    For a gradient that is a sum with cancellation (dw, db, dx), ``condition``
    is the same gradient computed from absolute values (sum of |terms|): a
    float32 sum can only be accurate relative to that, so the scale is the
    larger of the two norms.
    """
    assert got is not None and want is not None, what
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert not np.isnan(got).any() or np.isnan(want).any(), f"{what}: unwritten (NaN) elements"
    err, scale = np.linalg.norm(got - want), np.linalg.norm(want)
    if condition is not None:
        scale = max(scale, np.linalg.norm(condition))
    assert err <= TOL[dtype] * scale or err == 0, f"{what}: relative error {err / scale:.3g}"


def _cond_gy(gy, y, act):
    """|gy| times the magnitude of the activation derivative's terms, so that the
    condition gradient (computed with act=None) also bounds the float32 error of
    forming 1 - y*y (tanh) or y - y*y (sigmoid) near saturation."""
    mag = {None: 1.0, "relu": (y > 0) * 1.0, "tanh": 1 + y * y, "sigmoid": y + y * y}[act]
    return abs(gy) * mag


def _run(dev, name, *args, **kwargs):
    """Call kernel ``name`` with float64 host arrays converted for the device."""
    out = getattr(dev.k, name)(*args, **kwargs)
    if isinstance(out, tuple):
        return tuple(None if o is None else dev.to_host(o) for o in out)
    return None if out is None else dev.to_host(out)


seeds = st.integers(0, 2**32 - 1)
needs_st = st.tuples(st.booleans(), st.booleans(), st.booleans()).filter(any)


class _Recorder:
    """Forwards to the extension and records each call's (name, stream, device)."""

    def __init__(self, mod):
        self._mod, self.calls = mod, []

    def __getattr__(self, name):
        fn = getattr(self._mod, name)

        def call(*args, **kwargs):
            self.calls.append((name, args[-2] if name != "conv2d_backward_splits" else None,
                               args[-1]))
            return fn(*args, **kwargs)
        return call
