"""The CUDA runtime as the emulator models it (no GPU needed): a failed runtime
call is not blamed on the next kernel, kernels run on their arrays' device and
stream and the caller's device is restored, the GEMM's rows do not use grid.y,
and MINITL_CUDA_SYNC=1 names the kernel that faulted.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from cuda_emu import current_device, dev_array, stream_ptr
from cuda_fixtures import _check, _Recorder, _swapped, emu  # noqa: F401
from minitl.kernels import cuda_base as base
from minitl.kernels import reference as ref


# ------------------------------------------------------- emulator-only checks
def _small_linear(device=None):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((6, 4)), rng.standard_normal((3, 4))
    return dev_array(x, device=device), dev_array(w, device=device), x @ w.T


def test_failed_runtime_call_is_not_blamed_on_the_next_kernel(emu):
    k, hooks = emu
    x, w, want = _small_linear()
    with pytest.raises(RuntimeError, match=r"minitl\._C_cuda\.capture_end: .*present state"):
        base._C.capture_end(stream_ptr(0), 0)  # no capture was begun
    np.testing.assert_allclose(k.linear_forward(x, w, None, None), want, rtol=1e-12)
    y = dev_array(np.empty((6, 3)))
    with pytest.raises(RuntimeError, match=r"minitl\._C_cuda\.cudaSetDevice: invalid device"):
        base._C.linear_forward(x.data.ptr, w.data.ptr, 0, y.data.ptr, 6, 4, 3, 0, 1, 0, 7)
    np.testing.assert_allclose(k.linear_forward(x, w, None, None), want, rtol=1e-12)


def test_kernels_run_on_the_arrays_device_and_stream(emu):
    """Arrays on device 1 while device 0 is current: the launch gets device 1's
    stream, outputs are allocated on device 1, and device 0 is current again
    afterwards, for CuPy and for the extension's runtime."""
    k, hooks = emu
    rec = _Recorder(base._C)
    x, w, want = _small_linear(device=1)
    assert current_device() == 0 and hooks.emu_get_device() == 0
    with _swapped(_C=rec):
        y = k.linear_forward(x, w, None, None)
        gx, gw, gb = k.linear_backward(dev_array(np.ones((6, 3)), device=1), x, w, None, None)
        k.sgd_step([w], [gw], None, 0.1, 0.0, 0.0, False, 0.0, True)
    np.testing.assert_allclose(y, want, rtol=1e-12)
    assert y.device.id == 1 and gx.device.id == 1 and gw.device.id == 1
    assert rec.calls == [(name, stream_ptr(1), 1)
                         for name in ("linear_forward", "linear_backward", "sgd_step")]
    assert current_device() == 0 and hooks.emu_get_device() == 0


def test_extension_restores_the_callers_device(emu):
    """Called with device 1 while 0 is current, the extension switches for the
    call only (before, cudaSetDevice(1) outlived it)."""
    k, hooks = emu
    x, w, want = _small_linear()
    y = dev_array(np.empty((6, 3)))
    base._C.linear_forward(x.data.ptr, w.data.ptr, 0, y.data.ptr, 6, 4, 3, 0, 1, stream_ptr(1), 1)
    np.testing.assert_allclose(y, want, rtol=1e-12)
    assert hooks.emu_get_device() == 0


def test_gemm_rows_do_not_use_grid_y(emu):
    """Row tiles on grid.y capped m at 65535 tiles (4.19M rows); with the
    emulator's grid.y limit lowered to 2, 300 rows (5-10 row tiles) must run."""
    k, hooks = emu
    rng = np.random.default_rng(2)
    x, w, gy = rng.standard_normal((300, 5)), rng.standard_normal((7, 5)), rng.standard_normal((300, 7))
    hooks.emu_set_max_grid_y(2)
    y = k.linear_forward(dev_array(x), dev_array(w), None, "tanh")
    _check("linear y", y, ref.linear_forward(x, w, None, "tanh"), np.float64)
    got = k.linear_backward(dev_array(gy), dev_array(x), dev_array(w), y, "tanh")
    for name, g, r in zip(("dx", "dw", "db"), got,
                          ref.linear_backward(gy, x, w, np.asarray(y), "tanh", (True, True, True))):
        _check(f"linear {name}", g, r, np.float64)


def test_sync_mode_names_the_kernel_that_faulted(emu):
    """A fault inside a kernel is asynchronous: the launch succeeds. With
    MINITL_CUDA_SYNC on, the launch synchronizes and names the kernel; the next
    launch is fine; while a capture is under way it does not synchronize."""
    k, hooks = emu
    x, w, want = _small_linear()
    hooks.emu_inject_fault()
    k.linear_forward(x, w, None, None)  # sync off: nothing to see at the launch
    hooks.emu_reset()
    base._C.set_sync_launches(1)
    try:
        assert base._C.sync_launches()
        hooks.emu_inject_fault()
        with pytest.raises(RuntimeError, match=r"minitl\._C_cuda\.linear_forward: an illegal "
                                               r"memory access.*MINITL_CUDA_SYNC=1"):
            k.linear_forward(x, w, None, None)
        np.testing.assert_allclose(k.linear_forward(x, w, None, None), want, rtol=1e-12)
        base._C.capture_begin(stream_ptr(0), 0)
        k.linear_forward(x, w, None, None)  # a sync here would invalidate the capture
        assert base._C.capture_end(stream_ptr(0), 0) == [0, 0, 0, 0]
    finally:
        base._C.set_sync_launches(0)


@pytest.mark.parametrize("value, on", [("1", True), ("0", False), ("", False)])
def test_sync_mode_follows_the_environment_variable(emu, value, on):
    code = ("import importlib.util as u, sys; s = u.spec_from_file_location('_C_cuda_emu', "
            "sys.argv[1]); m = u.module_from_spec(s); s.loader.exec_module(m); "
            "print(m.sync_launches())")
    out = subprocess.run([sys.executable, "-c", code, base._C.__file__], capture_output=True,
                         text=True, env={**os.environ, "MINITL_CUDA_SYNC": value}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(on)
