"""The CUDA kernels (minitl._C_cuda) against the float64 reference: linear,
softmax cross-entropy, optimizers, argument errors, and the GPU-only end-to-end
runs (LeNet curve, repeatability, state_dict round trip, launch counting).

Backends (``emu`` and ``gpu``), poisoning and tolerances: see tests/cuda_fixtures.py.
Window ops are in test_kernels_cuda_conv.py, BatchNorm in
test_kernels_cuda_norm.py, the emulated runtime (devices, streams, faults) in
test_kernels_cuda_runtime.py.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cuda_fixtures import (_PRISTINE, DTYPES, _check, _cond_gy, _pristine_cuda, _rand, _run, dev,  # noqa: F401
                           gpu, needs_st, seeds)
from minitl.core import backend
from minitl.kernels import cuda_base as base
from minitl.kernels import reference as ref

ACTS = [None, "relu", "tanh", "sigmoid"]


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
    assert base._POISON is True
    with _pristine_cuda():
        assert base._POISON is False and base._SPLITS is None
        assert base._C is _PRISTINE["_C"] and base._cp is _PRISTINE["_cp"]
        assert backend._cupy is _PRISTINE["xp"]
    assert base._POISON is True


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
