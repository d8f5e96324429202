"""Every instruction-set variant of the C++ kernels (minitl._C) that this CPU can run.

``_C`` carries the GEMM, linear, conv and conv+pool kernels compiled for
AVX-512, AVX2+FMA and plain C++ (csrc/cpu/isa.h) and picks one when it loads;
``_C.set_cpu_isa`` switches in-process, so each variant is checked here
against the NumPy reference on hypothesis-drawn geometries (float32 to 1e-5,
float64 to 1e-10, relative to the largest magnitude, as in
test_kernels_native.py, whose helpers these tests reuse), and must give
bit-identical results for 1 and 2 threads and from one run to the next.
Variants differ from each other only in the last bits, which is not checked.

A variant the CPU lacks is skipped with the reason (an AVX-512 build run on
an AVX2 machine, say); a build with MINITL_EMULATE_AVX512=1 runs the AVX-512
variant's code from AVX2 register pairs, so its tiling is tested anywhere.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitl.kernels import fused_reference as FR
from minitl.kernels import cpu as N
from minitl.kernels import reference as R

from hypothesis_kernels import ACTIVATIONS, DTYPES, NEEDS, arrays, conv_geometries
from test_kernels_native import check_conv, close

REQUIRE = os.environ.get("MINITL_REQUIRE_NATIVE") == "1"
if not N.AVAILABLE and not REQUIRE:
    pytest.skip(f"C++ kernels not built: {N.STATUS}", allow_module_level=True)

C = N._C
ALL = ("avx512", "avx2", "generic")
RUNNABLE = C.cpu_isas() if N.AVAILABLE else []


def _variant_params():
    why = f"this CPU/build runs only {', '.join(RUNNABLE)} ({C.build_info()['cpu_features']})" \
        if N.AVAILABLE else "no _C"
    return [pytest.param(name, marks=() if name in RUNNABLE else pytest.mark.skip(reason=why))
            for name in ALL]


VARIANTS = _variant_params()


@contextlib.contextmanager
def isa(name):
    """Run the block on variant ``name``, then restore the one active before."""
    before = C.cpu_isa()
    assert C.set_cpu_isa(name) == name
    try:
        yield
    finally:
        C.set_cpu_isa(before)


@contextlib.contextmanager
def threads(n):
    before = N.get_num_threads()
    N.set_num_threads(n)
    try:
        yield
    finally:
        N.set_num_threads(before)


# ------------------------------------------------------- against the reference
@pytest.mark.parametrize("name", VARIANTS)
@given(st.integers(1, 40), st.integers(1, 70), st.integers(1, 70), DTYPES, ACTIVATIONS,
       st.booleans(), NEEDS, st.data())
def test_linear(name, n, fin, fout, dtype, act, bias, needs, data):
    """Sizes cross the tile edges of every variant (6 rows; 2, 16 or 32 columns)."""
    x = data.draw(arrays((n, fin), dtype))
    w = data.draw(arrays((fout, fin), dtype))
    b = data.draw(arrays((fout,), dtype)) if bias else None
    gy = data.draw(arrays((n, fout), dtype))
    with isa(name):
        y = C.linear_forward(x, w, b, act)
        got = C.linear_backward(gy, x, w, y, act, needs)
    yr = R.linear_forward(x.copy(), w, b, act)
    close(y, yr, dtype, f"y [{name}]")
    want = R.linear_backward(gy, x, w, yr, act, needs)
    for what, g, r in zip(("dx", "dw", "db"), got, want):
        close(g, r, dtype, f"{what} [{name}]")


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("fin,act", [(257, "relu"), (600, "tanh"), (300, "sigmoid"), (513, None)])
def test_linear_long_inner_dimension(name, fin, act):
    """An inner dimension over one cache block (256): bias and activation must be
    applied once, by the last block's store, not by every block's."""
    rng = np.random.default_rng(fin)
    x = rng.standard_normal((37, fin)).astype(np.float32)
    w = (rng.standard_normal((45, fin)) / np.sqrt(fin)).astype(np.float32)
    b = rng.standard_normal(45).astype(np.float32)
    gy = rng.standard_normal((37, 45)).astype(np.float32)
    with isa(name):
        y = C.linear_forward(x, w, b, act)
        got = C.linear_backward(gy, x, w, y, act, (True, True, True))
    yr = R.linear_forward(x, w, b, act)
    close(y, yr, np.float32, "y")
    for what, g, r in zip(("dx", "dw", "db"), got, R.linear_backward(gy, x, w, yr, act)):
        close(g, r, np.float32, what)


@pytest.mark.parametrize("name", VARIANTS)
@given(conv_geometries(), DTYPES, ACTIVATIONS, st.booleans(), NEEDS, st.data())
def test_conv2d(name, geom, dtype, act, bias, needs, data):
    with isa(name):
        check_conv(geom, dtype, act, bias, needs, data)


@pytest.mark.parametrize("name", VARIANTS)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(4, 16), st.integers(4, 16), st.integers(1, 17),
       st.integers(1, 5), st.integers(0, 2), st.sampled_from([(2, 2), (3, 2), (1, 1)]), DTYPES,
       ACTIVATIONS, st.booleans(), NEEDS, st.data())
def test_conv2d_pool(name, n, c, h, w_, o, k, p, pool, dtype, act, bias, needs, data):
    if h + 2 * p < k + pool[0] - 1 or w_ + 2 * p < k + pool[1] - 1:
        return
    x = data.draw(arrays((n, c, h, w_), dtype))
    w = data.draw(arrays((o, c, k, k), dtype, scale=0.5))
    b = data.draw(arrays((o,), dtype)) if bias else None
    s, pp = (1, 1), (p, p)
    yr, idxr = FR.conv2d_pool_forward(x, w, b, s, pp, act, pool)
    gy = data.draw(arrays(yr.shape, dtype))
    with isa(name):
        y, idx = C.conv2d_pool_forward(x, w, b, s, pp, act, pool)
        got = C.conv2d_pool_backward(gy, x, w, y, idx, s, pp, act, pool, needs)
    close(y, yr, dtype, f"y [{name}]")
    np.testing.assert_array_equal(idx, idxr)  # random data never ties
    want = FR.conv2d_pool_backward(gy, x, w, yr, idxr, s, pp, act, pool, needs)
    for what, g, r in zip(("dx", "dw", "db"), got, want):
        close(g, r, dtype, f"{what} [{name}]")


@pytest.mark.parametrize("name", VARIANTS)
@given(st.integers(1, 80), st.integers(1, 600), st.integers(1, 70), DTYPES,
       st.sampled_from(["c", "f", "strided", "transposed"]), st.data())
def test_matmul(name, m, k, n, dtype, layout, data):
    a = data.draw(arrays((m, k), dtype, layout=layout))
    b = data.draw(arrays((k, n), dtype))
    with isa(name):
        got = C.matmul(a, b)
    close(got, (a.astype(np.float64) @ b.astype(np.float64)).astype(dtype), dtype, f"matmul [{name}]")


# --------------------------------------------- deterministic within a variant
def _all_kernels(seed):
    """Every kernel of the variant table on shapes big enough to run on 2 threads."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    out = []
    x = rng.standard_normal((64, 300)).astype(f32)
    w = rng.standard_normal((100, 300)).astype(f32)
    b = rng.standard_normal(100).astype(f32)
    y = C.linear_forward(x, w, b, "relu")
    out += [y, *C.linear_backward(rng.standard_normal(y.shape).astype(f32), x, w, y, "relu")]
    out.append(C.matmul(x, w.T.copy()))
    xi = rng.standard_normal((9, 3, 16, 16)).astype(f32)
    wc = rng.standard_normal((16, 3, 5, 5)).astype(f32)
    bc = rng.standard_normal(16).astype(f32)
    for s, p in (((1, 1), (2, 2)), ((2, 2), (1, 1))):  # padded-grid and phase-grid (strided) paths
        yc = C.conv2d_forward(xi, wc, bc, s, p, "tanh")
        out += [yc, *C.conv2d_backward(rng.standard_normal(yc.shape).astype(f32), xi, wc, yc, s, p,
                                       "tanh")]
    yp, idx = C.conv2d_pool_forward(xi, wc, bc, (1, 1), (2, 2), "relu", (2, 2))
    out += [yp, idx, *C.conv2d_pool_backward(rng.standard_normal(yp.shape).astype(f32), xi, wc, yp,
                                             idx, (1, 1), (2, 2), "relu", (2, 2))]
    return out


@pytest.mark.parametrize("name", VARIANTS)
def test_bit_identical_across_threads_and_runs(name):
    with isa(name):
        with threads(1):
            one = _all_kernels(0)
        with threads(2):
            two = _all_kernels(0)
            again = _all_kernels(0)
    for i, (a, b, c) in enumerate(zip(one, two, again)):
        np.testing.assert_array_equal(a, b, err_msg=f"output {i}: 1 vs 2 threads [{name}]")
        np.testing.assert_array_equal(b, c, err_msg=f"output {i}: run to run [{name}]")


# ------------------------------------------------------------- the choice
def test_default_is_the_best_runnable_variant():
    assert RUNNABLE and RUNNABLE[-1] == "generic"  # generic is always built and runnable
    assert set(RUNNABLE) <= set(C.build_info()["isas_compiled"])
    if "MINITL_CPU_ISA" not in os.environ:
        assert C.cpu_isa() == RUNNABLE[0]


@pytest.mark.parametrize("name", VARIANTS)
def test_build_info_follows_the_active_variant(name):
    with isa(name):
        info = C.build_info()
        assert info["isa"] == info["simd"] == name
        assert {"avx512": "AVX-512", "avx2": "AVX2", "generic": "scalar"}[name] in info["gemm"]
        assert info["isa_status"].startswith(name)
        assert "\n" not in info["isa_status"]
    assert C.build_info()["isa"] == C.cpu_isa()


def test_status_line_names_the_isa():
    assert f"ISA={C.cpu_isa()}" in N._status()


def test_unknown_name_is_a_clear_error():
    before = C.cpu_isa()
    with pytest.raises(ValueError) as info:
        C.set_cpu_isa("avx9000")
    assert "avx9000" in str(info.value) and "avx2" in str(info.value) and "generic" in str(info.value)
    assert C.cpu_isa() == before  # nothing changed


@pytest.mark.skipif(len(RUNNABLE) == len(ALL), reason="this CPU runs every variant")
def test_variant_the_cpu_lacks_is_a_clear_error():
    missing = next(n for n in ALL if n not in RUNNABLE)
    with pytest.raises(RuntimeError) as info:
        C.set_cpu_isa(missing)
    msg = str(info.value)
    assert missing in msg and "generic" in msg, msg  # what was asked, and what can run


def test_auto_selects_the_best_and_names_ignore_case():
    with isa("generic"):
        assert C.set_cpu_isa("auto") == RUNNABLE[0]
        assert C.set_cpu_isa(" Generic ") == "generic"  # as MINITL_CPU_ISA is read


def _python(code, **env):
    full = {k: v for k, v in os.environ.items() if k != "MINITL_CPU_ISA"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          timeout=120)


def test_env_override_in_a_subprocess():
    code = ("import minitl._C as C; from minitl.kernels import cpu; "
            "print(C.cpu_isa()); print(cpu.STATUS)")
    out = _python(code, MINITL_CPU_ISA="generic")
    assert out.returncode == 0, out.stderr
    name, status = out.stdout.strip().splitlines()
    assert name == "generic"
    assert "ISA=generic (MINITL_CPU_ISA=generic;" in status, status
    assert "RuntimeWarning" not in out.stderr


@pytest.mark.parametrize("value", ["avx9000"] + [n for n in ALL if n not in RUNNABLE][:1])
def test_env_that_cannot_be_honoured_warns_and_runs_the_best(value):
    """An exception while _C loads would surface as an ImportError, i.e. "C++ kernels not
    built" and the NumPy reference everywhere; the warning keeps the fastest variant."""
    out = _python("import minitl._C as C; print(C.cpu_isa()); print(C.build_info()['isa_choice'])",
                  MINITL_CPU_ISA=value)
    assert out.returncode == 0, out.stderr
    assert "RuntimeWarning" in out.stderr and f"MINITL_CPU_ISA={value}" in out.stderr, out.stderr
    name, choice = out.stdout.strip().splitlines()
    assert name == RUNNABLE[0]
    assert value in choice
