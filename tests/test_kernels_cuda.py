"""The CUDA kernels (minitl._C_cuda) against the float64 reference.

Each kernel test runs on two backends:

* ``gpu`` (marked ``gpu``, skipped without one): CuPy arrays through
  ``minitl.kernels.cuda`` and the real extension;
* ``emu``: the same ``.cu`` sources compiled for the CPU by
  ``csrc/cuda/emu/build.py`` (each CUDA thread a fiber, barriers and warp
  shuffles honoured), driven through the same Python wrappers with NumPy
  arrays posing as CuPy ones. It checks the kernels' indexing and reductions
  on machines without a GPU; it cannot check timing, memory model or PTX.

Outputs are poisoned with NaN before each run (``cuda._POISON``), inputs are
fresh random numbers (never zeros), and float32 results must satisfy
``||out - ref|| / ||ref|| < 1e-5`` against the reference in float64
(float64 kernels: 1e-12). Import needs neither CuPy nor a GPU.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from cuda_emu import FAKE_CUPY, current_device, dev_array, emu_hooks, emu_module, stream_ptr
from minitl.core import backend
from minitl.kernels import cuda
from minitl.kernels import reference as ref
ACTS = [None, "relu", "tanh", "sigmoid"]
DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-12}

# What the fixtures swap, as found at import (before any fixture ran): the
# real extension (or None), CuPy (or None) and the test hooks' defaults.
_PRISTINE = {**{k: getattr(cuda, k) for k in ("_C", "_cp", "_POISON", "_SPLITS")},
             "xp": backend._cupy}


@contextlib.contextmanager
def _swapped(**values):
    """Set attributes of minitl.kernels.cuda (``xp``: backend._cupy); restore after."""
    saved = {k: getattr(cuda, k) for k in values if k != "xp"}
    saved_xp = backend._cupy
    for k, v in values.items():
        if k == "xp":
            backend._cupy = v
        else:
            setattr(cuda, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(cuda, k, v)
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
        if not cuda.AVAILABLE:
            pytest.skip(cuda.STATUS)
        chosen = SimpleNamespace(k=cuda, to_dev=cp.asarray, to_host=cp.asnumpy, name="gpu")
        state = _swapped(_POISON=True)
    else:
        state = _emu_state()
        chosen = SimpleNamespace(k=cuda, to_dev=dev_array, to_host=np.asarray, name="emu")
    with state, _swapped(_POISON=True):
        yield chosen


@contextlib.contextmanager
def _pristine_cuda():
    """minitl.kernels.cuda as imported: the real extension and CuPy, hooks off."""
    with _swapped(**_PRISTINE):
        yield


@pytest.fixture
def gpu():
    """(cupy, minitl.kernels.cuda) with the real extension and the hooks at their
    defaults, whatever ``dev`` left set up: its ``_POISON = True`` made every
    output cost CuPy a fill kernel, which the launch-count test then counted."""
    cp = pytest.importorskip("cupy")
    if not cuda.AVAILABLE:
        pytest.skip(cuda.STATUS)
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


# -------------------------------------------------------------------- linear
@given(n=st.integers(1, 70), k=st.integers(1, 70), out=st.integers(1, 70),
       act=st.sampled_from(ACTS), bias=st.booleans(), needs=needs_st,
       dtype=st.sampled_from(DTYPES), seed=seeds)
def test_linear(dev, n, k, out, act, bias, needs, dtype, seed):
    rng = np.random.default_rng(seed)
    x, w, gy = _rand(rng, (n, k), dtype), _rand(rng, (out, k), dtype), _rand(rng, (n, out), dtype)
    b = _rand(rng, (out,), dtype) if bias else None
    y_ref = ref.linear_forward(x, w, b, act)
    d = lambda a: None if a is None else dev.to_dev(a.astype(dtype))  # noqa: E731
    y = _run(dev, "linear_forward", d(x), d(w), d(b), act)
    _check("linear y", y, y_ref, dtype)
    # Backward from the reference's y (rounded to dtype) so both see one y.
    y_in = y_ref.astype(dtype).astype(np.float64)
    want = ref.linear_backward(gy, x, w, y_in, act, needs)
    got = _run(dev, "linear_backward", d(gy), d(x), d(w), d(y_in), act, needs=needs)
    cond = ref.linear_backward(_cond_gy(gy, y_in, act), abs(x), abs(w), y_in, None, needs)
    for name, g, r, c, need in zip(("dx", "dw", "db"), got, want, cond, needs):
        assert (g is None) == (not need), name
        if need:
            _check(f"linear {name}", g, r, dtype, c)


# -------------------------------------------------------------------- conv2d
@st.composite
def conv_geoms(draw):
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 10)), draw(st.integers(1, 10))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kh, kw = draw(st.integers(1, min(7, h + 2 * ph))), draw(st.integers(1, min(7, w + 2 * pw)))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (o, c, kh, kw), (sh, sw), (ph, pw)


def _conv_case(dev, geom, act, bias, needs, dtype, seed):
    (xs, ws, stride, padding) = geom
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, xs, dtype), _rand(rng, ws, dtype)
    b = _rand(rng, (ws[0],), dtype) if bias else None
    d = lambda a: None if a is None else dev.to_dev(a.astype(dtype))  # noqa: E731
    y_ref = ref.conv2d_forward(x, w, b, stride, padding, act)
    _check("conv2d y", _run(dev, "conv2d_forward", d(x), d(w), d(b), stride, padding, act),
           y_ref, dtype)
    y_in = y_ref.astype(dtype).astype(np.float64)
    gy = _rand(rng, y_ref.shape, dtype)
    want = ref.conv2d_backward(gy, x, w, y_in, stride, padding, act, needs)
    got = _run(dev, "conv2d_backward", d(gy), d(x), d(w), d(y_in), stride, padding, act,
               needs=needs)
    cond = ref.conv2d_backward(_cond_gy(gy, y_in, act), abs(x), abs(w), y_in, stride, padding, None,
                               needs)
    for name, g, r, c, need in zip(("dx", "dw", "db"), got, want, cond, needs):
        assert (g is None) == (not need), name
        if need:
            _check(f"conv2d {name}", g, r, dtype, c)


@given(geom=conv_geoms(), act=st.sampled_from(ACTS), bias=st.booleans(), needs=needs_st,
       dtype=st.sampled_from(DTYPES), seed=seeds)
def test_conv2d(dev, geom, act, bias, needs, dtype, seed):
    _conv_case(dev, geom, act, bias, needs, dtype, seed)


@pytest.mark.parametrize("splits", [2, 3, 7])
def test_conv2d_split_reduction(dev, splits):
    """The weight gradient summed over sample-splits by the second kernel."""
    dev.k._SPLITS = splits
    try:
        geom = ((5, 3, 9, 8), (4, 3, 3, 2), (1, 2), (1, 0))
        for dtype in DTYPES:
            _conv_case(dev, geom, "tanh", True, (True, True, True), dtype, splits)
            _conv_case(dev, geom, None, True, (False, False, True), dtype, splits + 1)
    finally:
        dev.k._SPLITS = None


# ------------------------------------------------------ conv2d + act + pool
@given(geom=conv_geoms(), pool=st.sampled_from([(2, 2), (1, 2), (2, 1), (1, 1), (1, 3), (3, 2)]),
       act=st.sampled_from(ACTS), bias=st.booleans(), needs=needs_st,
       dtype=st.sampled_from(DTYPES), seed=seeds)
def test_conv2d_pool(dev, geom, pool, act, bias, needs, dtype, seed):
    from minitl.kernels import fused_reference as fref

    xs, ws, stride, padding = geom
    oh = ref.conv_output_size(xs[2], ws[2], stride[0], padding[0])
    ow = ref.conv_output_size(xs[3], ws[3], stride[1], padding[1])
    assume(oh >= pool[0] and ow >= pool[1])
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, xs, dtype), _rand(rng, ws, dtype)
    b = _rand(rng, (ws[0],), dtype) if bias else None
    d = lambda a: None if a is None else dev.to_dev(a.astype(dtype))  # noqa: E731
    y_ref, idx_ref = fref.conv2d_pool_forward(x, w, b, stride, padding, act, pool)
    y, idx = _run(dev, "conv2d_pool_forward", d(x), d(w), d(b), stride, padding, act, pool)
    _check("conv2d_pool y", y, y_ref, dtype)
    if dtype == np.float64:  # float32 may break near-ties differently
        np.testing.assert_array_equal(idx, idx_ref)
    y_in = y_ref.astype(dtype).astype(np.float64)
    gy = _rand(rng, y_ref.shape, dtype)
    want = fref.conv2d_pool_backward(gy, x, w, y_in, idx_ref, stride, padding, act, pool, needs)
    got = _run(dev, "conv2d_pool_backward", d(gy), d(x), d(w), d(y_in), dev.to_dev(idx_ref),
               stride, padding, act, pool, needs=needs)
    cond = fref.conv2d_pool_backward(_cond_gy(gy, y_in, act), abs(x), abs(w), y_in, idx_ref, stride,
                                     padding, None, pool, needs)
    for name, g, r, c, need in zip(("dx", "dw", "db"), got, want, cond, needs):
        assert (g is None) == (not need), name
        if need:
            _check(f"conv2d_pool {name}", g, r, dtype, c)


# ------------------------------------------------------------------- pooling
@st.composite
def pool_geoms(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    kh, kw = draw(st.integers(1, h)), draw(st.integers(1, w))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), (kh, kw), (sh, sw)


@given(geom=pool_geoms(), dtype=st.sampled_from(DTYPES), seed=seeds)
def test_max_pool2d(dev, geom, dtype, seed):
    xs, kernel, stride = geom
    rng = np.random.default_rng(seed)
    x = _rand(rng, xs, dtype)
    y_ref, idx_ref = ref.max_pool2d_forward(x, kernel, stride)
    y, idx = _run(dev, "max_pool2d_forward", dev.to_dev(x.astype(dtype)), kernel, stride)
    _check("max_pool2d y", y, y_ref, dtype)
    np.testing.assert_array_equal(idx, idx_ref)
    gy = _rand(rng, y_ref.shape, dtype)
    want = ref.max_pool2d_backward(gy, idx_ref, xs, kernel, stride)
    got = _run(dev, "max_pool2d_backward", dev.to_dev(gy.astype(dtype)),
               dev.to_dev(idx_ref), xs, kernel, stride)
    _check("max_pool2d dx", got, want, dtype)


@given(geom=pool_geoms(), dtype=st.sampled_from(DTYPES), seed=seeds)
def test_avg_pool2d(dev, geom, dtype, seed):
    xs, kernel, stride = geom
    rng = np.random.default_rng(seed)
    x = _rand(rng, xs, dtype)
    y_ref = ref.avg_pool2d_forward(x, kernel, stride)
    _check("avg_pool2d y", _run(dev, "avg_pool2d_forward", dev.to_dev(x.astype(dtype)),
                                kernel, stride), y_ref, dtype)
    gy = _rand(rng, y_ref.shape, dtype)
    want = ref.avg_pool2d_backward(gy, xs, kernel, stride)
    got = _run(dev, "avg_pool2d_backward", dev.to_dev(gy.astype(dtype)), xs, kernel, stride)
    _check("avg_pool2d dx", got, want, dtype)


# ------------------------------------------------------- softmax cross-entropy
@given(n=st.integers(1, 40), c=st.integers(1, 70), smoothing=st.sampled_from([0.0, 0.1]),
       dtype=st.sampled_from(DTYPES), seed=seeds)
def test_cross_entropy(dev, n, c, smoothing, dtype, seed):
    rng = np.random.default_rng(seed)
    logits = _rand(rng, (n, c), dtype) * 3
    target = rng.integers(0, c, n)
    losses_ref, probs_ref = ref.cross_entropy_forward(logits, target, smoothing)
    losses, probs = _run(dev, "cross_entropy_forward", dev.to_dev(logits.astype(dtype)),
                         dev.to_dev(target), smoothing)
    _check("cross_entropy losses", losses, losses_ref, dtype)
    _check("cross_entropy probs", probs, probs_ref, dtype)
    gl = _rand(rng, (n,), dtype)
    probs_in = probs_ref.astype(dtype).astype(np.float64)
    want = ref.cross_entropy_backward(gl, probs_in.copy(), target, smoothing)
    got = _run(dev, "cross_entropy_backward", dev.to_dev(gl.astype(dtype)),
               dev.to_dev(probs_in.astype(dtype)), dev.to_dev(target), smoothing)
    _check("cross_entropy dlogits", got, want, dtype)


# ---------------------------------------------------------------- optimizers
shapes_st = st.lists(st.sampled_from([(3,), (7, 5), (1500,), (2, 1100), (1,), (4, 3, 5)]),
                     min_size=1, max_size=4)


def _opt_case(dev, name, shapes, dtype, seed, n_state, **hyper):
    rng = np.random.default_rng(seed)
    host = [[_rand(rng, s, dtype) for s in shapes] for _ in range(2 + n_state)]
    if name == "adam_step":  # second moments are never negative
        host[3] = [np.abs(v) for v in host[3]]
    want = [[a.copy() for a in group] for group in host]
    getattr(ref, name)(*want, **hyper)
    devs = [[dev.to_dev(a.astype(dtype)) for a in group] for group in host]
    getattr(dev.k, name)(*devs, **hyper)
    labels = ("param", "grad", "state1", "state2")
    for label, group_got, group_want in zip(labels, devs, want):
        for got, exp in zip(group_got, group_want):
            _check(f"{name} {label}", dev.to_host(got), exp, dtype)


@given(shapes=shapes_st, momentum=st.sampled_from([0.0, 0.9]), nesterov=st.booleans(),
       dampening=st.sampled_from([0.0, 0.1]), wd=st.sampled_from([0.0, 1e-2]),
       first=st.booleans(), dtype=st.sampled_from(DTYPES), seed=seeds)
def test_sgd_step(dev, shapes, momentum, nesterov, dampening, wd, first, dtype, seed):
    _opt_case(dev, "sgd_step", shapes, dtype, seed, 1, lr=0.1, momentum=momentum,
              dampening=dampening, nesterov=nesterov, weight_decay=wd, first=first)


@given(shapes=shapes_st, step=st.integers(1, 50), wd=st.sampled_from([0.0, 1e-2]),
       decoupled=st.booleans(), dtype=st.sampled_from(DTYPES), seed=seeds)
def test_adam_step(dev, shapes, step, wd, decoupled, dtype, seed):
    _opt_case(dev, "adam_step", shapes, dtype, seed, 2, step=step, lr=1e-2, beta1=0.9,
              beta2=0.999, eps=1e-8, weight_decay=wd, decoupled=decoupled)


def test_optimizers_over_many_tensors(dev):
    """More tensors than one launch's list holds (48): the lists are split."""
    shapes = [(i % 7 + 1, 3) for i in range(53)] + [(3000,)]
    for dtype in DTYPES:
        _opt_case(dev, "sgd_step", shapes, dtype, 1, 1, lr=0.05, momentum=0.9, dampening=0.0,
                  nesterov=True, weight_decay=1e-3, first=False)
        _opt_case(dev, "adam_step", shapes, dtype, 2, 2, step=3, lr=1e-3, beta1=0.9,
                  beta2=0.99, eps=1e-8, weight_decay=0.1, decoupled=True)


# -------------------------------------------------------------------- errors
def test_shape_and_dtype_errors_name_the_arrays(dev):
    d = dev.to_dev
    x, w = d(np.ones((4, 3), np.float32)), d(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(2, 5\)"):
        dev.k.linear_forward(x, w, None, None)
    with pytest.raises(ValueError, match="float64"):
        dev.k.linear_forward(x, d(np.ones((2, 3), np.float64)), None, None)
    with pytest.raises(ValueError, match="activation"):
        dev.k.linear_forward(x, d(np.ones((2, 3), np.float32)), None, "gelu")
    with pytest.raises(ValueError, match="larger than padded input"):
        dev.k.conv2d_forward(d(np.ones((1, 1, 3, 3), np.float32)),
                             d(np.ones((1, 1, 5, 5), np.float32)), None, (1, 1), (0, 0), None)


def test_zero_sized_batch(dev):
    x = dev.to_dev(np.ones((0, 3), np.float32))
    w = dev.to_dev(np.full((2, 3), 0.5, np.float32))
    assert _run(dev, "linear_forward", x, w, None, "relu").shape == (0, 2)
    gy = dev.to_dev(np.ones((0, 2), np.float32))
    dx, dw, db = _run(dev, "linear_backward", gy, x, w, gy, "relu")
    assert dx.shape == (0, 3) and not dw.any() and not db.any()


def test_cross_entropy_flags_out_of_range_targets_with_nan(dev):
    """F.cross_entropy leaves device targets unchecked (no host sync): the kernel
    must turn a bad target into a NaN loss, and its backward must not write
    outside the row (no "-1" term) for it."""
    logits = np.random.default_rng(0).standard_normal((4, 5))
    target = np.array([1, 5, -1, 4])
    losses, probs = _run(dev, "cross_entropy_forward", dev.to_dev(logits), dev.to_dev(target), 0.0)
    assert np.isnan(losses[[1, 2]]).all() and np.isfinite(losses[[0, 3]]).all(), losses
    _check("cross_entropy probs", probs, ref.cross_entropy_forward(logits, [1, 0, 0, 4], 0.0)[1],
           np.float64)
    d = _run(dev, "cross_entropy_backward", dev.to_dev(np.ones(4)), dev.to_dev(probs),
             dev.to_dev(target), 0.0)
    np.testing.assert_allclose(d[[1, 2]], probs[[1, 2]], rtol=1e-12)


class _DeviceTargets(np.ndarray):
    """Targets posing as a CuPy array that record reductions (each a host sync on a GPU)."""

    synced: list = []

    def min(self, *a, **k):
        _DeviceTargets.synced.append("min")
        return super().min(*a, **k)

    def max(self, *a, **k):
        _DeviceTargets.synced.append("max")
        return super().max(*a, **k)


_DeviceTargets.__module__ = "cupy_emulated"  # backend.is_cupy_array: on the device


def test_cross_entropy_targets_on_the_device_are_not_synced(monkeypatch):
    """F.cross_entropy passes check_device=False when the CUDA kernel runs: device
    targets are then left to the kernel (NaN), host targets are still checked on
    the host, and nll_loss (default) still checks device targets."""
    import minitl
    import minitl.nn.functional as F

    monkeypatch.setattr(F, "xp_for", lambda device: SimpleNamespace(asarray=lambda a: a))
    logits = minitl.tensor(np.zeros((3, 10), np.float32))
    bad = np.array([3, 10, 0]).view(_DeviceTargets)
    _DeviceTargets.synced = []
    out = F._targets(logits, bad, "cross_entropy", check_device=False)
    assert _DeviceTargets.synced == [] and out.dtype == np.int64
    with pytest.raises(ValueError, match="class index 10 is out of range for 10 classes"):
        F._targets(logits, [3, 10, 0], "cross_entropy", check_device=False)
    with pytest.raises(ValueError, match="nll_loss: class index 10 is out of range"):
        F._targets(logits, bad, "nll_loss")
    assert _DeviceTargets.synced == ["min", "max"]


def test_default_hooks_are_restored_for_the_gpu_only_tests(dev):
    """The ``gpu`` fixture's reset: under ``dev`` (still set up after its own tests)
    the hooks are on; inside the reset they are as imported, and after it
    ``dev``'s are back for its remaining tests."""
    assert cuda._POISON is True
    with _pristine_cuda():
        assert cuda._POISON is False and cuda._SPLITS is None
        assert cuda._C is _PRISTINE["_C"] and cuda._cp is _PRISTINE["_cp"]
        assert backend._cupy is _PRISTINE["xp"]
    assert cuda._POISON is True


# ------------------------------------------------------- emulator-only checks
def _small_linear(device=None):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((6, 4)), rng.standard_normal((3, 4))
    return dev_array(x, device=device), dev_array(w, device=device), x @ w.T


def test_failed_runtime_call_is_not_blamed_on_the_next_kernel(emu):
    k, hooks = emu
    x, w, want = _small_linear()
    with pytest.raises(RuntimeError, match=r"minitl\._C_cuda\.capture_end: .*present state"):
        k._C.capture_end(stream_ptr(0), 0)  # no capture was begun
    np.testing.assert_allclose(k.linear_forward(x, w, None, None), want, rtol=1e-12)
    y = dev_array(np.empty((6, 3)))
    with pytest.raises(RuntimeError, match=r"minitl\._C_cuda\.cudaSetDevice: invalid device"):
        k._C.linear_forward(x.data.ptr, w.data.ptr, 0, y.data.ptr, 6, 4, 3, 0, 1, 0, 7)
    np.testing.assert_allclose(k.linear_forward(x, w, None, None), want, rtol=1e-12)


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


def test_kernels_run_on_the_arrays_device_and_stream(emu):
    """Arrays on device 1 while device 0 is current: the launch gets device 1's
    stream, outputs are allocated on device 1, and device 0 is current again
    afterwards, for CuPy and for the extension's runtime."""
    k, hooks = emu
    rec = _Recorder(k._C)
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
    k._C.linear_forward(x.data.ptr, w.data.ptr, 0, y.data.ptr, 6, 4, 3, 0, 1, stream_ptr(1), 1)
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
    k._C.set_sync_launches(1)
    try:
        assert k._C.sync_launches()
        hooks.emu_inject_fault()
        with pytest.raises(RuntimeError, match=r"minitl\._C_cuda\.linear_forward: an illegal "
                                               r"memory access.*MINITL_CUDA_SYNC=1"):
            k.linear_forward(x, w, None, None)
        np.testing.assert_allclose(k.linear_forward(x, w, None, None), want, rtol=1e-12)
        k._C.capture_begin(stream_ptr(0), 0)
        k.linear_forward(x, w, None, None)  # a sync here would invalidate the capture
        assert k._C.capture_end(stream_ptr(0), 0) == [0, 0, 0, 0]
    finally:
        k._C.set_sync_launches(0)


@pytest.mark.parametrize("value, on", [("1", True), ("0", False), ("", False)])
def test_sync_mode_follows_the_environment_variable(emu, value, on):
    code = ("import importlib.util as u, sys; s = u.spec_from_file_location('_C_cuda_emu', "
            "sys.argv[1]); m = u.module_from_spec(s); s.loader.exec_module(m); "
            "print(m.sync_launches())")
    out = subprocess.run([sys.executable, "-c", code, emu[0]._C.__file__], capture_output=True,
                         text=True, env={**os.environ, "MINITL_CUDA_SYNC": value}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(on)


# ------------------------------------------- shapes beyond 32-bit offsets
@pytest.mark.parametrize("x_shape, w_shape, padding, what", [
    ((1, 40000, 300, 300), (8, 40000, 1, 1), 0, "one input sample"),
    ((2, 1, 46341, 46341), (1, 1, 1, 1), 0, "one input sample"),
    ((1, 1, 1, 1), (1, 1, 1, 1), 33000, "one output sample"),
    ((1, 2, 20000, 20000), (6, 2, 1, 1), 0, "one output sample"),
    ((1, 50000, 8, 8), (50000, 50000, 1, 1), 0, "the weight's size"),
])
def test_conv_rejects_samples_beyond_int32_offsets(x_shape, w_shape, padding, what):
    """Checked on the shapes alone: nothing of that size is allocated."""
    with pytest.raises(ValueError, match=rf"conv2d_forward: {what}.*above 2\*\*31 - 1"):
        cuda._conv_geom("conv2d_forward", x_shape, w_shape, 1, padding)


def test_conv_accepts_the_largest_sample_that_fits():
    # (c*h + kh)*w + kw = (46340 + 1)*46340 + 1 = 2147441941 <= 2**31 - 1
    g = cuda._conv_geom("conv2d_forward", (3, 1, 46340, 46340), (1, 1, 1, 1), 1, 0)
    assert g[11:] == (46340, 46340)


def test_pool_rejects_planes_beyond_int32_offsets():
    with pytest.raises(ValueError, match=r"max_pool2d_forward: one input plane, H\*W, is "
                                         r"2147488281 .*x=\(1, 1, 46341, 46341\)"):
        cuda._pool_geom("max_pool2d_forward", (1, 1, 46341, 46341), 2, 2)
    assert cuda._pool_geom("avg_pool2d_forward", (4, 3, 46340, 46340), 2, 2)[11] == 23170


# ------------------------------------------------------- GPU-only, end to end
@pytest.mark.gpu
def test_cuda_error_names_the_call_and_the_next_launch_works(gpu):
    cp, cuda = gpu
    stream = cp.cuda.Stream(non_blocking=True)
    with pytest.raises(RuntimeError, match=r"minitl\._C_cuda\.capture_end"):
        cuda._C.capture_end(stream.ptr, cp.cuda.Device().id)  # no capture was begun
    x, w = cp.ones((8, 4), cp.float32), cp.ones((3, 4), cp.float32)
    np.testing.assert_array_equal(cp.asnumpy(cuda.linear_forward(x, w, None, None)), 4.0)


@pytest.mark.gpu
def test_count_kernels_counts_launches(gpu):
    cp, cuda = gpu
    x, w = cp.ones((8, 4), cp.float32), cp.ones((3, 4), cp.float32)
    cuda.linear_forward(x, w, None, "relu")  # warm CuPy's pool
    from minitl.kernels.cuda_launches import count_kernels

    counts = count_kernels(lambda: cuda.linear_forward(x, w, None, "relu"))
    assert counts["kernels"] == 1 and counts["minitl"] == 1, counts


@pytest.mark.gpu
def test_cross_entropy_on_device_targets_makes_no_host_sync(gpu):
    """Capturable (a capture fails on any device->host copy), and a bad target
    gives a NaN loss instead of the CPU path's ValueError."""
    cp, cuda = gpu
    import minitl
    import minitl.nn.functional as F
    from minitl.kernels.cuda_launches import count_kernels

    logits = minitl.tensor(np.random.default_rng(0).standard_normal((8, 10)).astype(np.float32),
                           device="cuda")
    t = cp.asarray(np.arange(8) % 10)
    F.cross_entropy(logits, t)  # warm CuPy's pool
    counts = count_kernels(lambda: F.cross_entropy(logits, t))
    assert counts["minitl"] == 1, counts
    assert np.isnan(F.cross_entropy(logits, cp.asarray(np.array([0] * 7 + [10]))).item())
    with pytest.raises(ValueError, match="class index 10 is out of range for 10 classes"):
        F.cross_entropy(logits, np.array([0] * 7 + [10]))  # host targets: checked on the host


def _lenet_curve(device, steps, seed=0, batch=64):
    import minitl
    import minitl.nn.functional as F
    from minitl import optim
    from minitl.models import LeNet

    rng = np.random.default_rng(seed)
    n = 512  # a learnable task: class templates plus noise
    labels = rng.integers(0, 10, n)
    templates = rng.standard_normal((10, 1, 28, 28)).astype(np.float32)
    images = (templates[labels] + rng.standard_normal((n, 1, 28, 28))).astype(np.float32)
    order = np.concatenate([rng.permutation(n) for _ in range(steps * batch // n + 1)])
    minitl.manual_seed(seed)
    model = LeNet()
    model.to(device)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for step in range(steps):
        idx = order[step * batch:(step + 1) * batch]
        x = minitl.tensor(images[idx], device=device)
        y = minitl.tensor(labels[idx], device=device)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses)


@pytest.mark.gpu
def test_lenet_on_gpu_follows_the_cpu_loss_curve(gpu):
    from minitl import kernels

    assert kernels.active("cuda")["conv2d_forward"] == "cuda"
    cpu, gpu = _lenet_curve("cpu", 200), _lenet_curve("cuda", 200)
    assert gpu[-20:].mean() < 0.5 * gpu[:20].mean(), "LeNet did not learn on the GPU"
    np.testing.assert_allclose(gpu, cpu, rtol=1e-2, atol=1e-3)


@pytest.mark.gpu
def test_gpu_training_repeats_bit_identically(gpu):
    """No atomics in the kernels, fixed reduction orders: same steps, same bits."""
    np.testing.assert_array_equal(_lenet_curve("cuda", 5), _lenet_curve("cuda", 5))


@pytest.mark.gpu
def test_state_dict_round_trips_between_cpu_and_gpu(gpu):
    cp, _ = gpu
    import minitl
    from minitl.models import LeNet

    minitl.manual_seed(3)
    cpu_model = LeNet()
    sd = {k: np.array(v) for k, v in cpu_model.state_dict().items()}
    gpu_model = LeNet()
    gpu_model.to("cuda")
    gpu_model.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    with minitl.no_grad():
        want = cpu_model(minitl.tensor(x)).numpy()
        got = gpu_model(minitl.tensor(x, device="cuda")).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    gpu_sd = gpu_model.state_dict()
    assert all(isinstance(v, cp.ndarray) for v in gpu_sd.values())
    back = LeNet()
    back.load_state_dict(gpu_sd)  # CuPy arrays into a CPU model
    for k, v in back.state_dict().items():
        assert isinstance(v, np.ndarray), k
        np.testing.assert_array_equal(v, sd[k], err_msg=k)
