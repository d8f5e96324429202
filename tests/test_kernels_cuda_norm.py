"""The CUDA BatchNorm kernels (csrc/cuda/batchnorm.cu) against the reference
(kernels/norm_reference.py) in float64.

Forward (train and eval, affine or not, with or without running buffers,
buffers float32 or float64 independently of x) and backward (every ``needs``)
on hypothesis-drawn (N, C), (N, C, L), (N, C, H, W); the running buffers must
move in place like the reference's; results repeat bit-identically; NaN
spreads like the reference; bad arguments name themselves; arrays on another
device run there. Backends (``emu`` and ``gpu``), poisoning (every output
element must be written) and tolerances: see tests/cuda_fixtures.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cuda_emu import current_device, dev_array, stream_ptr
from cuda_fixtures import DTYPES, _check, _Recorder, _rand, _run, _swapped, dev, emu, gpu  # noqa: F401
from minitl.kernels import norm_reference as R

FACTORS = st.sampled_from([0.1, 1.0, 0.5, 1.0 / 3])  # momentum 0.1, and 1/k of momentum=None
EPS = 1e-5


@st.composite
def bn_shapes(draw):
    """(N, C), (N, C, L) or (N, C, H, W), at least 2 values per channel."""
    c = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["nc", "ncl", "nchw"]))
    n = draw(st.integers(1, 9 if kind == "nc" else 3))
    spatial = {"nc": (), "ncl": (draw(st.integers(1, 12)),),
               "nchw": (draw(st.integers(1, 5)), draw(st.integers(1, 5)))}[kind]
    if n * int(np.prod(spatial, dtype=np.int64)) < 2:
        n = 2
    return (n, c) + spatial


def _case(rng, shape, dtype, affine, buf_dtype):
    """Host float64 arrays holding values of their device dtypes: x, w, b, rm, rv."""
    c = shape[1]
    x = _rand(rng, shape, dtype) * 2 + 0.5
    x = x.astype(dtype).astype(np.float64)
    w = _rand(rng, (c,), dtype) if affine else None
    b = _rand(rng, (c,), dtype) if affine else None
    rm = _rand(rng, (c,), buf_dtype)
    rv = rng.uniform(0.5, 2.0, c).astype(buf_dtype).astype(np.float64)
    return x, w, b, rm, rv


def _to(dev, a, dtype):
    return None if a is None else dev.to_dev(a.astype(dtype))


def _low(*dtypes):
    """The lower precision of the dtypes (it bounds a result mixing them)."""
    return np.float32 if np.float32 in dtypes else np.float64


# -------------------------------------------------------------------- forward
@given(shape=bn_shapes(), dtype=st.sampled_from(DTYPES), buf_dtype=st.sampled_from(DTYPES),
       training=st.booleans(), affine=st.booleans(), track=st.booleans(), factor=FACTORS,
       seed=st.integers(0, 2**32 - 1))
def test_forward_matches_reference(dev, shape, dtype, buf_dtype, training, affine, track, factor,
                                   seed):
    x, w, b, rm, rv = _case(np.random.default_rng(seed), shape, dtype, affine, buf_dtype)
    if training and not track:
        rm = rv = None  # track_running_stats=False: nothing to update
    want_m, want_v = (None, None) if rm is None else (rm.copy(), rv.copy())
    want = R.batch_norm_forward(x, w, b, want_m, want_v, training, factor, EPS)
    got_m, got_v = _to(dev, rm, buf_dtype), _to(dev, rv, buf_dtype)
    out = dev.k.batch_norm_forward(_to(dev, x, dtype), _to(dev, w, dtype), _to(dev, b, dtype),
                                   got_m, got_v, training, factor, EPS)
    for name, g, r in zip(("y", "mean", "invstd"), out, want):
        assert g.dtype == dtype, name
        _check(f"batch_norm {name}", dev.to_host(g), r, dtype)
    if rm is not None:
        _check("running_mean", dev.to_host(got_m), want_m, _low(dtype, buf_dtype))
        _check("running_var", dev.to_host(got_v), want_v, _low(dtype, buf_dtype))
        if not training:  # eval never moves the statistics
            np.testing.assert_array_equal(dev.to_host(got_m), rm.astype(buf_dtype))
            np.testing.assert_array_equal(dev.to_host(got_v), rv.astype(buf_dtype))


@pytest.mark.parametrize("shape", [(3000, 2), (5, 2, 700), (2, 3, 37, 41), (1, 1, 2), (1100, 1, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_backward_walk_every_value_of_a_channel(dev, shape, training):
    """Channels longer than a block (512 threads), with S = 1, S > 512 and S in
    between, so each thread's walk over (n, s) wraps rows; eval splits a channel
    over several blocks (grid.y)."""
    rng = np.random.default_rng(sum(shape))
    for dtype in DTYPES:
        x, w, b, rm, rv = _case(rng, shape, dtype, True, np.float32)
        want = R.batch_norm_forward(x, w, b, rm.copy(), rv.copy(), training, 0.1, EPS)
        got = _run(dev, "batch_norm_forward", _to(dev, x, dtype), _to(dev, w, dtype),
                   _to(dev, b, dtype), _to(dev, rm, np.float32), _to(dev, rv, np.float32),
                   training, 0.1, EPS)
        for name, g, r in zip(("y", "mean", "invstd"), got, want):
            _check(f"batch_norm {name}", g, r, dtype)
        mean, invstd = (a.astype(dtype).astype(np.float64) for a in want[1:])
        gy = _rand(rng, shape, dtype)
        for needs in ((True, True, True), (True, False, False)):
            want_g = R.batch_norm_backward(gy, x, w, mean, invstd, training, needs)
            got_g = _run(dev, "batch_norm_backward", _to(dev, gy, dtype), _to(dev, x, dtype),
                         _to(dev, w, dtype), _to(dev, mean, dtype), _to(dev, invstd, dtype),
                         training, needs)
            for name, g, r in zip(("dx", "dweight", "dbias"), got_g, want_g):
                assert (g is None) == (r is None), name
                if r is not None:
                    _check(f"batch_norm {name}", g, r, dtype)


def test_running_buffers_are_updated_in_place_by_hand(dev):
    # x per channel: [1, 3] and [0, 4] -> mean 2 / 2, unbiased var 2 / 8.
    x = dev.to_dev(np.array([[1.0, 0.0], [3.0, 4.0]], np.float32))
    rm, rv = dev.to_dev(np.zeros(2, np.float32)), dev.to_dev(np.ones(2, np.float32))
    y, mean, invstd = dev.k.batch_norm_forward(x, None, None, rm, rv, True, 0.1, 0.0)
    np.testing.assert_allclose(dev.to_host(mean), [2.0, 2.0])
    np.testing.assert_allclose(dev.to_host(invstd), [1.0, 0.5])  # biased var 1 and 4
    np.testing.assert_allclose(dev.to_host(y), [[-1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_allclose(dev.to_host(rm), [0.2, 0.2], rtol=1e-6)
    np.testing.assert_allclose(dev.to_host(rv), [0.9 + 0.2, 0.9 + 0.8], rtol=1e-6)
    # cumulative average, first batch: factor 1 replaces the buffers by the batch statistics
    dev.k.batch_norm_forward(x, None, None, rm, rv, True, 1.0, 0.0)
    np.testing.assert_allclose(dev.to_host(rm), [2.0, 2.0])
    np.testing.assert_allclose(dev.to_host(rv), [2.0, 8.0])


# ------------------------------------------------------------------- backward
@given(shape=bn_shapes(), dtype=st.sampled_from(DTYPES), w_dtype=st.sampled_from(DTYPES),
       training=st.booleans(), affine=st.booleans(),
       needs=st.tuples(st.booleans(), st.booleans(), st.booleans()), seed=st.integers(0, 2**32 - 1))
def test_backward_matches_reference(dev, shape, dtype, w_dtype, training, affine, needs, seed):
    rng = np.random.default_rng(seed)
    x, w, b, rm, rv = _case(rng, shape, dtype, affine, np.float32)
    if w is not None:
        w = w.astype(w_dtype).astype(np.float64)
    _, mean, invstd = R.batch_norm_forward(x, w, b, rm, rv, training, 0.1, EPS)
    mean, invstd = mean.astype(dtype).astype(np.float64), invstd.astype(dtype).astype(np.float64)
    gy = _rand(rng, shape, dtype)
    want = R.batch_norm_backward(gy, x, w, mean, invstd, training, needs)
    got = _run(dev, "batch_norm_backward", _to(dev, gy, dtype), _to(dev, x, dtype),
               _to(dev, w, w_dtype), _to(dev, mean, dtype), _to(dev, invstd, dtype), training, needs)
    for name, g, r, need in zip(("dx", "dweight", "dbias"), got, want, needs):
        assert (g is None) == (not need), name
        if need:
            assert g.dtype == dtype, name
            _check(f"batch_norm {name}", g, r, dtype)


# ------------------------------------------------------- determinism and NaN
def test_results_repeat_bit_identically(dev):
    """Fixed reduction orders, no atomics: the same call gives the same bits."""
    rng = np.random.default_rng(5)
    shape = (4, 3, 30, 21)
    x, w, b, rm, rv = _case(rng, shape, np.float32, True, np.float32)
    gy = _rand(rng, shape, np.float32)
    runs = []
    for _ in range(2):
        m, v = _to(dev, rm, np.float32), _to(dev, rv, np.float32)
        out = []
        for training in (True, False):
            y, mean, invstd = dev.k.batch_norm_forward(
                _to(dev, x, np.float32), _to(dev, w, np.float32), _to(dev, b, np.float32), m, v,
                training, 0.1, EPS)
            grads = dev.k.batch_norm_backward(_to(dev, gy, np.float32), _to(dev, x, np.float32),
                                              _to(dev, w, np.float32), mean, invstd, training)
            out += [y, mean, invstd, m, v, *grads]
        runs.append([dev.to_host(a).tobytes() for a in out])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("training", [True, False])
def test_nan_spreads_like_the_reference(dev, training):
    """Train: a NaN poisons its channel's statistics, output and running buffers;
    eval: only its own output."""
    rng = np.random.default_rng(11)
    x, w, b, rm, rv = _case(rng, (3, 4, 5), np.float64, True, np.float32)
    x[1, 2, 3] = np.nan
    want_m, want_v = rm.copy(), rv.copy()
    with np.errstate(invalid="ignore"):
        want = R.batch_norm_forward(x, w, b, want_m, want_v, training, 0.1, EPS)
    got_m, got_v = _to(dev, rm, np.float32), _to(dev, rv, np.float32)
    got = _run(dev, "batch_norm_forward", dev.to_dev(x), dev.to_dev(w), dev.to_dev(b), got_m,
               got_v, training, 0.1, EPS)
    for name, g, r in zip(("y", "mean", "invstd", "running_mean", "running_var"),
                          (*got, dev.to_host(got_m), dev.to_host(got_v)),
                          (*want, want_m, want_v)):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r), err_msg=name)
        ok = ~np.isnan(r)
        np.testing.assert_allclose(g[ok], r[ok], rtol=1e-6, err_msg=name)
    assert np.isnan(got[0][:, 2]).all() == training


# --------------------------------------------------------------------- errors
def test_bad_arguments_name_themselves(dev):
    d = dev.to_dev
    x, c3 = d(np.zeros((4, 3), np.float32)), d(np.zeros(3, np.float32))
    fwd, bwd = dev.k.batch_norm_forward, dev.k.batch_norm_backward
    cases = [
        (r"batch_norm_forward: x must be \(N, C\)", lambda: fwd(c3, None, None, None, None, True, 0.1, EPS)),
        (r"batch_norm_forward: CUDA kernels need all float32 or all float64.*int32",
         lambda: fwd(d(np.zeros((4, 3), np.int32)), None, None, None, None, True, 0.1, EPS)),
        (r"batch_norm_forward: weight must have shape \(3,\).*\(4,\)",
         lambda: fwd(x, d(np.zeros(4, np.float32)), None, None, None, True, 0.1, EPS)),
        (r"batch_norm_forward: bias must be float32 or float64, got int64",
         lambda: fwd(x, None, d(np.zeros(3, np.int64)), None, None, True, 0.1, EPS)),
        (r"batch_norm_forward: running_var must have shape \(3,\)",
         lambda: fwd(x, None, None, c3, d(np.zeros((3, 1), np.float32)), True, 0.1, EPS)),
        (r"batch_norm_forward: give both", lambda: fwd(x, None, None, c3, None, True, 0.1, EPS)),
        (r"batch_norm_forward: evaluation needs", lambda: fwd(x, None, None, None, None, False, 0.1, EPS)),
        (r"batch_norm_forward: .*1 value per channel",
         lambda: fwd(d(np.zeros((1, 3), np.float32)), None, None, c3, c3, True, 0.1, EPS)),
        (r"batch_norm_forward: running_mean must be a C-contiguous .* updated in place",
         lambda: fwd(x, None, None, d(np.zeros(6, np.float32))[::2], c3, True, 0.1, EPS)),
        (r"batch_norm_backward: gy \(4, 2\) must have the shape of x \(4, 3\)",
         lambda: bwd(d(np.zeros((4, 2), np.float32)), x, None, c3, c3, True)),
        (r"batch_norm_backward: CUDA kernels need all float32 or all float64",
         lambda: bwd(d(np.zeros((4, 3), np.float64)), x, None, c3, c3, True)),
        (r"batch_norm_backward: invstd must have shape \(3,\)",
         lambda: bwd(x, x, None, c3, d(np.zeros(2, np.float32)), True)),
    ]
    for msg, call in cases:
        with pytest.raises(ValueError, match=msg):
            call()


# ------------------------------------------------------------- devices, GPU
def test_batchnorm_runs_on_the_arrays_device_and_stream(emu):
    """Arrays on device 1 while device 0 is current: launches get device 1's
    stream, outputs land on device 1, the buffers move there, device 0 is
    current again afterwards."""
    k, hooks = emu
    from minitl.kernels import cuda_base as base

    rng = np.random.default_rng(4)
    x, w, b, rm, rv = _case(rng, (3, 2, 4), np.float64, True, np.float32)
    on1 = lambda a: dev_array(a, device=1)  # noqa: E731
    m, v = on1(rm.astype(np.float32)), on1(rv.astype(np.float32))
    rec = _Recorder(base._C)
    with _swapped(_C=rec):
        y, mean, invstd = k.batch_norm_forward(on1(x), on1(w), on1(b), m, v, True, 0.1, EPS)
        dx, dw, db = k.batch_norm_backward(on1(x), on1(x), on1(w), mean, invstd, True)
    assert rec.calls == [(name, stream_ptr(1), 1) for name in ("batch_norm_forward", "batch_norm_backward")]
    assert all(a.device.id == 1 for a in (y, mean, invstd, dx, dw, db))
    want_m, want_v = rm.copy(), rv.copy()
    want = R.batch_norm_forward(x, w, b, want_m, want_v, True, 0.1, EPS)
    _check("y", np.asarray(y), want[0], np.float64)
    _check("running_var", np.asarray(v), want_v, np.float32)
    assert current_device() == 0 and hooks.emu_get_device() == 0


@pytest.mark.gpu
def test_dispatch_serves_the_cuda_batchnorm(gpu):
    cp, cuda = gpu
    from minitl import kernels

    assert kernels.get("batch_norm_forward", "cuda") is cuda.batch_norm_forward
    assert kernels.active("cuda")["batch_norm_backward"] == "cuda"


@pytest.mark.gpu
def test_batchnorm2d_trains_the_same_on_gpu_and_cpu(gpu):
    import minitl
    from minitl import nn

    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((4, 3, 5, 5)).astype(np.float32) for _ in range(3)]
    results = []
    for device in ("cpu", "cuda"):
        bn = nn.BatchNorm2d(3, momentum=None)
        bn.to(device)
        for x in xs:
            t = minitl.tensor(x, requires_grad=True, device=device)
            (bn(t) * minitl.tensor(x, device=device)).sum().backward()
        bn.eval()
        y = bn(minitl.tensor(xs[0], device=device))
        results.append([np.asarray(a) for a in (y.numpy(), t.grad.numpy(), bn.weight.grad.numpy(),
                                                bn.running_mean.numpy(), bn.running_var.numpy())])
    for g, r in zip(*results):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
