"""Gradients added into existing ``.grad`` arrays (issue 15: buffers reused across steps).

* ``linear_backward_acc`` (C++, every instruction-set variant) adds dw and db
  into the arrays it is given, bit for bit as ``acc + dw`` of the plain kernel,
  for any thread count, also past one k block of samples (n > 256);
* the autograd engine adds into a ``.grad`` in place once that array is its own
  (PyTorch's ``grad += g``), never into an array that aliases another gradient,
  the user's seed, or a ``.grad`` dropped by ``zero_grad()``;
* training with ``zero_grad(set_to_none=False)`` gives the same parameters, bit
  for bit, as with the default ``zero_grad()``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl
import minitl.nn.functional as F
from minitl import kernels, nn, optim
from minitl.kernels import cpu as N
from minitl.kernels import fused_reference as FR
from minitl.kernels import reference as R

from hypothesis_kernels import ACTIVATIONS, DTYPES, NEEDS, arrays
from test_kernels_isa import VARIANTS, isa, threads
from test_kernels_native import close

REQUIRE = os.environ.get("MINITL_REQUIRE_NATIVE") == "1"
native = pytest.mark.skipif(not N.AVAILABLE and not REQUIRE, reason="C++ kernels not built")


def _draw_case(data, n, fin, fout, dtype):
    x = data.draw(arrays((n, fin), dtype))
    w = data.draw(arrays((fout, fin), dtype))
    gy = data.draw(arrays((n, fout), dtype))
    return x, w, gy, data.draw(arrays((fout, fin), dtype)), data.draw(arrays((fout,), dtype))


def _check_acc(x, w, gy, dw0, db0, act, needs, into_w, into_b, dtype, name):
    """The accumulating kernel against the plain one plus NumPy's add (bit for
    bit) and against the reference composite (to tolerance)."""
    y = N.linear_forward(x, w, None, act)
    dw_acc = dw0.copy() if into_w else None
    db_acc = db0.copy() if into_b else None
    dx, dw, db = N.linear_backward_acc(gy, x, w, y, act, needs, dw_acc, db_acc)
    pdx, pdw, pdb = N.linear_backward(gy, x, w, y, act, needs)
    for got, plain, start, into, what in ((dw, pdw, dw0, into_w, "dw"), (db, pdb, db0, into_b, "db")):
        if plain is None:
            assert got is None, what
            continue
        want = start + plain if into else plain
        np.testing.assert_array_equal(got, want, err_msg=f"{what} [{name}]")
    if into_w and needs[1]:
        assert dw is dw_acc  # added in place and handed back
    if into_b and needs[2]:
        assert db is db_acc
    np.testing.assert_array_equal(dx, pdx) if needs[0] else None
    rdx, rdw, rdb = FR.linear_backward_acc(gy, x, w, R.linear_forward(x, w, None, act), act, needs,
                                           dw0.copy() if into_w else None, db0.copy() if into_b else None)
    for got, ref, what in ((dx, rdx, "dx"), (dw, rdw, "dw"), (db, rdb, "db")):
        if ref is not None:
            close(got, ref, dtype, f"{what} vs reference [{name}]")


@native
@pytest.mark.parametrize("name", VARIANTS)
@given(st.integers(1, 40), st.integers(1, 70), st.integers(1, 70), DTYPES, ACTIVATIONS, NEEDS,
       st.booleans(), st.booleans(), st.data())
def test_acc_kernel_adds_like_a_separate_sum(name, n, fin, fout, dtype, act, needs, into_w, into_b, data):
    x, w, gy, dw0, db0 = _draw_case(data, n, fin, fout, dtype)
    with isa(name):
        _check_acc(x, w, gy, dw0, db0, act, needs, into_w, into_b, dtype, name)


@native
@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("n", [256, 257, 600])
def test_acc_kernel_past_one_block_of_samples(name, n):
    """n > 256 samples take the scratch path; still one rounding per element."""
    rng = np.random.default_rng(n)
    x, gy = rng.standard_normal((n, 45)).astype(np.float32), rng.standard_normal((n, 37)).astype(np.float32)
    w = rng.standard_normal((37, 45)).astype(np.float32)
    dw0, db0 = rng.standard_normal((37, 45)).astype(np.float32), rng.standard_normal(37).astype(np.float32)
    with isa(name):
        _check_acc(x, w, gy, dw0, db0, "relu", (True, True, True), True, True, np.float32, name)


@native
@pytest.mark.parametrize("name", VARIANTS)
def test_acc_kernel_bit_identical_across_threads(name):
    rng = np.random.default_rng(3)
    x, gy = rng.standard_normal((300, 130)).astype(np.float32), rng.standard_normal((300, 70)).astype(np.float32)
    w = rng.standard_normal((70, 130)).astype(np.float32)
    y = N.linear_forward(x, w, None, "tanh")
    runs = []
    for t in (1, 2, 1):
        with isa(name), threads(t):
            dw, db = np.ones((70, 130), np.float32), np.ones(70, np.float32)
            runs.append(N.linear_backward_acc(gy, x, w, y, "tanh", (True, True, True), dw, db))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


@native
def test_acc_kernel_rejects_bad_accumulators():
    x, w, gy = np.ones((4, 3), np.float32), np.ones((2, 3), np.float32), np.ones((4, 2), np.float32)
    bwd = N.linear_backward_acc
    needs = (True, True, True)
    with pytest.raises(ValueError, match=r"dw_acc \(3, 2\) must have shape \(2, 3\)"):
        bwd(gy, x, w, None, None, needs, np.zeros((3, 2), np.float32), None)
    with pytest.raises(ValueError, match=r"db_acc \(3,\) must have shape \(2,\)"):
        bwd(gy, x, w, None, None, needs, None, np.zeros(3, np.float32))
    with pytest.raises((TypeError, ValueError), match="dw_acc.*float32"):
        bwd(gy, x, w, None, None, needs, np.zeros((2, 3), np.float64), None)
    with pytest.raises(ValueError, match="dw_acc.*writable and C-contiguous"):
        bwd(gy, x, w, None, None, needs, np.zeros((3, 2), np.float32).T, None)
    frozen = np.zeros((2, 3), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="dw_acc.*writable"):
        bwd(gy, x, w, None, None, needs, frozen, None)
    with pytest.raises(ValueError, match="dw_acc shares memory with an input"):
        bwd(gy, x, w, None, None, needs, w, None)


# ------------------------------------------------------------------ the engine
def test_owned_grad_is_added_into_in_place():
    """PyTorch's accumulation: once .grad is the engine's own sum, later
    gradients go into that same array (a kept reference sees them)."""
    x = minitl.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(2):
        (x * 3).sum().backward()
    kept = x.grad
    (x * 3).sum().backward()
    assert x.grad is kept
    np.testing.assert_array_equal(kept.numpy(), [9.0, 9.0])


def test_aliased_first_gradients_are_never_added_into():
    """a + b hands one gradient array to both leaves; adding into a's must not change b's."""
    a = minitl.tensor([1.0, 1.0], requires_grad=True)
    b = minitl.tensor([1.0, 1.0], requires_grad=True)
    for k in range(1, 4):
        (a + b).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), [k, k])
        np.testing.assert_array_equal(b.grad.numpy(), [k, k])


def test_user_seed_and_assigned_grad_are_left_alone():
    x = minitl.tensor([1.0, 2.0], requires_grad=True)
    seed = np.array([1.0, 1.0], np.float32)
    for _ in range(3):
        (x * 1).backward(seed)
    np.testing.assert_array_equal(seed, [1.0, 1.0])
    mine = np.array([5.0, 5.0], np.float32)
    x.grad = minitl.tensor(mine)  # the user's array: summed out of place
    (x * 1).backward(seed)
    np.testing.assert_array_equal(mine, [5.0, 5.0])
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])


def _mlp_and_data(seed=0):
    minitl.manual_seed(seed)
    model = nn.Sequential(nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 7), nn.Tanh(), nn.Linear(7, 4))
    rng = np.random.default_rng(seed)
    x = minitl.tensor(rng.standard_normal((10, 12)).astype(np.float32))
    y = minitl.tensor(rng.integers(0, 4, 10))
    return model, x, y


def _train(set_to_none, steps=4, accumulate=1):
    model, x, y = _mlp_and_data()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    grads = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=set_to_none)
        for _ in range(accumulate):
            F.cross_entropy(model(x), y).backward()
        grads.append([p.grad.numpy().copy() for p in model.parameters()])
        opt.step()
    return [p.data.copy() for p in model.parameters()], grads, model


@pytest.mark.parametrize("mode", ["native", "reference"])
@pytest.mark.parametrize("accumulate", [1, 3])
def test_kept_grad_buffers_train_bit_identically(mode, accumulate):
    """zero_grad(set_to_none=False) reuses each .grad array (the chain's kernel
    adds into it); the numbers are those of fresh gradients every step."""
    before = kernels.mode()
    kernels.use(mode)
    try:
        fresh, fresh_grads, _ = _train(True, accumulate=accumulate)
        kept, kept_grads, model = _train(False, accumulate=accumulate)
    finally:
        kernels.use(before)
    for a, b in zip(fresh, kept):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(fresh_grads, kept_grads):
        for ga, gb in zip(a, b):
            np.testing.assert_array_equal(ga, gb)
    arrays_now = [p.grad.data for p in model.parameters()]
    F.cross_entropy(model(minitl.tensor(np.zeros((2, 12), np.float32))), minitl.tensor([0, 1])).backward()
    assert all(p.grad.data is a for p, a in zip(model.parameters(), arrays_now))  # reused in place


def test_grad_kept_after_default_zero_grad_is_never_overwritten():
    model, x, y = _mlp_and_data()
    opt = optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):  # make every .grad the engine's own array
        F.cross_entropy(model(x), y).backward()
    kept = [p.grad for p in model.parameters()]
    snapshot = [g.numpy().copy() for g in kept]
    opt.zero_grad()  # set_to_none: the next steps start new arrays
    for _ in range(3):
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for g, s in zip(kept, snapshot):
        np.testing.assert_array_equal(g.numpy(), s)
