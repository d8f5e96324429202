"""The CUDA kernels (``minitl._C_cuda``), exposed with the reference signatures.

Each function takes CuPy arrays, makes them contiguous, checks dtypes and
shapes (``ValueError`` naming them) and, with the arrays' device current,
allocates its outputs with CuPy (so CuPy's memory pool owns all device
memory) and launches the kernel on that device's current stream with raw
device pointers. A failed launch raises
``RuntimeError("minitl._C_cuda.<kernel>: <CUDA error>")``.

``AVAILABLE`` is True when the extension imported *and* runs on the current
GPU; ``STATUS`` says so, or why not, in one line (the build log
``minitl/_cuda_build.txt`` written by setup.py supplies the reason when the
extension was not built). When unavailable, the dispatch in
:mod:`minitl.kernels` falls back to CuPy's reference path.

Test hooks: with ``_POISON = True`` every output is filled with NaN (indices
with -7) before the kernel runs, so an element a kernel never writes shows up;
``_SPLITS = k`` forces k sample-splits in conv2d's weight-gradient reduction.
"""
from __future__ import annotations

import contextlib
import functools
import os

from . import reference

NAME = "cuda"
_POISON = False
_SPLITS = None
_ACTS = {None: 0, "relu": 1, "tanh": 2, "sigmoid": 3}
_F32, _F64 = 0, 1
_BUILD_LOG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "_cuda_build.txt")

try:
    from .. import _C_cuda as _C
except ImportError as exc:  # not built (nvcc missing, build failed) or broken
    _C = None
    _IMPORT_ERROR = f"{exc.__class__.__name__}: {exc}"
else:
    _IMPORT_ERROR = None

_cp = None  # CuPy, bound by _probe()


def _archs() -> tuple[list[tuple[int, int]], tuple[int, int] | None]:
    """(SASS architectures, PTX architecture or None) the extension was built for."""
    sass, ptx = [], None
    for a in str(getattr(_C, "ARCHS", "")).split(";"):
        a = a.strip()
        if a.startswith("compute_") and a[8:].isdigit():
            ptx = (int(a[8:-1]), int(a[-1]))
        elif a.isdigit():
            sass.append((int(a[:-1]), int(a[-1])))
    return sass, ptx


def _describe_build() -> str:
    sass, ptx = _archs()
    names = [f"sm_{a}{b}" for a, b in sass]
    text = f"{names[0]}..{names[-1]}" if len(names) > 1 else (names[0] if names else "no SASS")
    if ptx:
        text += f" + PTX compute_{ptx[0]}{ptx[1]}"
    skipped = getattr(_C, "SKIPPED", "")
    return text + (f" ({skipped} skipped: not supported by the nvcc that built it)"
                   if skipped else "")


def _runs_on(major: int, minor: int) -> bool:
    """SASS of the same major and minor <= the device's, or PTX it can JIT."""
    sass, ptx = _archs()
    if any(a == major and b <= minor for a, b in sass):
        return True
    return ptx is not None and ptx <= (major, minor)


def _not_built_reason() -> str:
    try:
        with open(_BUILD_LOG) as f:
            first = f.readline().strip()
        if first:
            return first
    except OSError:
        pass
    return f"minitl._C_cuda could not be imported ({_IMPORT_ERROR})"


def _probe() -> tuple[bool, str]:
    """Whether the kernels can run on the current GPU, and the one-line status."""
    global _cp
    fallback = "; ops run on CuPy's reference path"
    if _C is None:
        return False, _not_built_reason() + fallback
    from ..core import backend

    if not backend.cuda_available():
        return False, (f"CUDA kernels built for {_describe_build()}, but no GPU is usable "
                       f"({backend.cuda_unavailable_reason()})")
    _cp = backend.cupy()
    dev = _cp.cuda.Device().id
    try:
        major, minor, _sms = _C.device_info(dev)
    except RuntimeError as exc:  # e.g. a driver older than the toolkit that built us
        return False, f"minitl._C_cuda cannot run here ({exc}){fallback}"
    if not _runs_on(major, minor):
        return False, (f"CUDA kernels built for {_describe_build()} do not run on this "
                       f"sm_{major}{minor} GPU (rebuild with MINITL_CUDA_ARCHS={major}{minor})"
                       + fallback)
    return True, f"CUDA kernels built for {_describe_build()}, running on sm_{major}{minor}"


AVAILABLE, STATUS = _probe()


# ------------------------------------------------------------------ helpers
def _stream() -> int:
    """CuPy's current stream *of the current device* (call inside ``_on_device``)."""
    return _cp.cuda.get_current_stream().ptr


def _device_of(a):
    """The CuPy device of ``a`` (or of the first array of a list), as a context manager.

    Anything without a CuPy-like device (a NumPy array that ``_contig`` will
    upload, an empty list) runs on the current device.
    """
    if isinstance(a, (list, tuple)):
        a = a[0] if a else None
    dev = getattr(a, "device", None)
    return dev if hasattr(dev, "__enter__") else contextlib.nullcontext()


def _on_device(fn):
    """Run ``fn`` with its first argument's device current.

    Why: CuPy keeps one current stream per device and allocates on the
    current device. Arrays on device k while another device is current would
    otherwise get that other device's stream and outputs allocated on the
    wrong device. ``with device:`` also restores the previous device after the
    call, so the switch does not leak into the caller's later allocations.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _device_of(args[0] if args else None):
            return fn(*args, **kwargs)
    return wrapper


def _ptr(a) -> int:
    return 0 if a is None else int(a.data.ptr)


def _dtype_code(name: str, *arrays) -> int:
    """The common float dtype of ``arrays`` (Nones ignored), as the kernel's code."""
    dts = {a.dtype for a in arrays if a is not None}
    if len(dts) == 1:
        dt = dts.pop()
        if dt == _cp.float32:
            return _F32
        if dt == _cp.float64:
            return _F64
    shown = ", ".join(f"{a.dtype}{tuple(a.shape)}" for a in arrays if a is not None)
    raise ValueError(f"{name}: CUDA kernels need all float32 or all float64 arrays, got {shown}")


def _contig(*arrays):
    return [None if a is None else _cp.ascontiguousarray(a) for a in arrays]


def _empty(shape, dtype):
    out = _cp.empty(shape, dtype=dtype)
    if _POISON:
        out.fill(-7 if out.dtype.kind == "i" else float("nan"))
    return out


def _act(name: str, activation) -> int:
    try:
        return _ACTS[activation]
    except (KeyError, TypeError):
        raise ValueError(f"{name}: unknown activation {activation!r}; expected one of "
                         f"{tuple(_ACTS)}") from None


def _pair(v) -> tuple[int, int]:
    """(h, w) from a pair, or from one int used for both."""
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


# The kernels index within one sample (and within a weight tensor) with
# 32-bit ints: half the registers and shared memory of 64-bit offsets in the
# inner loops. Positions across the batch are 64-bit. Shapes beyond that are
# rejected here, rather than read out of bounds on the device.
_INT32_MAX = 2**31 - 1


def _check_int32(name: str, shapes: dict, *extents) -> None:
    """ValueError naming the first ``(what, value)`` above ``_INT32_MAX``, and the shapes."""
    for what, value in extents:
        if value > _INT32_MAX:
            shown = ", ".join(f"{k}={tuple(v)}" for k, v in shapes.items())
            raise ValueError(f"{name}: {what} is {value} for {shown}, above 2**31 - 1: the "
                             f"CUDA kernels index it with 32-bit ints")


def _shape_error(name: str, **arrays) -> ValueError:
    shown = ", ".join(f"{k}={tuple(v.shape) if hasattr(v, 'shape') else v}"
                      for k, v in arrays.items())
    return ValueError(f"{name}: incompatible shapes {shown}")


# -------------------------------------------------------------------- linear
@_on_device
def linear_forward(x, w, b, activation):
    """y = act(x @ w.T + b); x (N, in), w (out, in), b (out,) or None."""
    x, w, b = _contig(x, w, b)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1] or (
            b is not None and b.shape != (w.shape[0],)):
        raise _shape_error("linear_forward", x=x, w=w, b=b)
    dt = _dtype_code("linear_forward", x, w, b)
    n, k = x.shape
    _check_int32("linear_forward", {"x": x.shape, "w": w.shape}, ("the row count", n),
                 ("the feature count", max(k, w.shape[0])))
    y = _empty((n, w.shape[0]), x.dtype)
    _C.linear_forward(_ptr(x), _ptr(w), _ptr(b), _ptr(y), n, k, w.shape[0],
                      _act("linear_forward", activation), dt, _stream(), x.device.id)
    return y


@_on_device
def linear_backward(gy, x, w, y, activation, needs=(True, True, True)):
    """Gradients (dx, dw, db) of the fused linear; None where not needed."""
    act = _act("linear_backward", activation)
    gy, x, w, y = _contig(gy, x, w, y if act else None)
    if (x.ndim != 2 or w.ndim != 2 or w.shape[1] != x.shape[1]
            or gy.shape != (x.shape[0], w.shape[0]) or (y is not None and y.shape != gy.shape)):
        raise _shape_error("linear_backward", gy=gy, x=x, w=w, y=y)
    (n, k), out = x.shape, w.shape[0]
    _check_int32("linear_backward", {"x": x.shape, "w": w.shape}, ("the row count", n),
                 ("the feature count", max(k, out)))
    dt = _dtype_code("linear_backward", gy, x, w, y)
    dx = _empty((n, k), x.dtype) if needs[0] else None
    dw = _empty((out, k), x.dtype) if needs[1] else None
    db = _empty((out,), x.dtype) if needs[2] else None
    if dx is not None or dw is not None or db is not None:
        _C.linear_backward(_ptr(gy), _ptr(x), _ptr(w), _ptr(y), _ptr(dx), _ptr(dw), _ptr(db),
                           n, k, out, act, dt, _stream(), x.device.id)
    return dx, dw, db


# -------------------------------------------------------------------- conv2d
def _conv_geom(name, x_shape, w_shape, stride, padding):
    """The kernels' 13-int geometry from the shapes (no array is touched)."""
    x_shape, w_shape = tuple(int(s) for s in x_shape), tuple(int(s) for s in w_shape)
    if len(x_shape) != 4 or len(w_shape) != 4 or x_shape[1] != w_shape[1]:
        raise _shape_error(name, x=x_shape, w=w_shape)
    n, c, h, wd = x_shape
    o, _, kh, kw = w_shape
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    if sh < 1 or sw < 1 or ph < 0 or pw < 0 or kh < 1 or kw < 1 or kh > 32767 or kw > 32767:
        raise ValueError(f"{name}: bad geometry w={w_shape} stride={stride} "
                         f"padding={padding}")
    oh = reference.conv_output_size(h, kh, sh, ph)
    ow = reference.conv_output_size(wd, kw, sw, pw)
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: kernel {(kh, kw)} larger than padded input "
                         f"x={x_shape} with padding={(ph, pw)}")
    # Largest int offsets the kernels form: (c*H + i)*W + j over the input
    # sample (i < kh, j < kw may overhang it when padded), the output sample,
    # and the weights. Every other 32-bit index is bounded by one of these.
    _check_int32(name, {"x": x_shape, "w": w_shape},
                 ("one input sample's extent, (C*H + kh)*W + kw,",
                  (c * h + kh) * wd + kw),
                 ("one output sample, O*OH*OW,", o * oh * ow),
                 ("the weight's size", o * c * kh * kw), ("the batch size", n))
    return (n, c, h, wd, o, kh, kw, sh, sw, ph, pw, oh, ow)


@_on_device
def conv2d_forward(x, w, b, stride, padding, activation):
    """y = act(conv2d(x, w) + b); x (N, C, H, W), w (O, C, kh, kw)."""
    x, w, b = _contig(x, w, b)
    g = _conv_geom("conv2d_forward", x.shape, w.shape, stride, padding)
    if b is not None and b.shape != (w.shape[0],):
        raise _shape_error("conv2d_forward", w=w, b=b)
    dt = _dtype_code("conv2d_forward", x, w, b)
    y = _empty((g[0], g[4], g[11], g[12]), x.dtype)
    _C.conv2d_forward(_ptr(x), _ptr(w), _ptr(b), _ptr(y), g,
                      _act("conv2d_forward", activation), dt, _stream(), x.device.id)
    return y


@_on_device
def conv2d_backward(gy, x, w, y, stride, padding, activation, needs=(True, True, True),
                    _pool=None):
    """Gradients (dx, dw, db) of the fused conv2d; None where not needed.

    ``_pool=(indices, (ph, pw))`` makes it conv2d_pool's backward: ``gy`` and
    ``y`` are then pooled and the kernel routes them through ``indices``.
    """
    act = _act("conv2d_backward", activation)
    gy, x, w, y = _contig(gy, x, w, y if act else None)
    g = _conv_geom("conv2d_backward", x.shape, w.shape, stride, padding)
    yshape, idx, (ph, pw) = (g[0], g[4], g[11], g[12]), None, (0, 0)
    if _pool is not None:
        (ph, pw) = _pool[1]
        idx = _cp.ascontiguousarray(_pool[0], dtype=_cp.int64)
        yshape = (g[0], g[4], g[11] // max(ph, 1), g[12] // max(pw, 1))
        if idx.shape != yshape or ph < 1 or pw < 1:
            raise _shape_error("conv2d_pool_backward", gy=gy, indices=idx, x=x, w=w)
    if gy.shape != yshape or (y is not None and y.shape != yshape):
        raise _shape_error("conv2d_backward", gy=gy, x=x, w=w, y=y)
    dt = _dtype_code("conv2d_backward", gy, x, w, y)
    dx = _empty(x.shape, x.dtype) if needs[0] else None
    dw = _empty(w.shape, x.dtype) if needs[1] else None
    db = _empty((w.shape[0],), x.dtype) if needs[2] else None
    ws, splits = None, 1
    if dw is not None or db is not None:
        splits = _SPLITS or _C.conv2d_backward_splits(g, x.device.id)
        if splits > 1:  # per-split partial sums, reduced by a second kernel
            ws = _cp.empty(splits * (w.size + w.shape[0]), dtype=x.dtype)
    if dx is not None or dw is not None or db is not None:
        _C.conv2d_backward(_ptr(gy), _ptr(x), _ptr(w), _ptr(y), _ptr(dx), _ptr(dw), _ptr(db),
                           _ptr(ws), splits, g, act, dt, _stream(), x.device.id, _ptr(idx),
                           ph, pw)
    return dx, dw, db


# ------------------------------------------- conv2d + activation + max-pool
FUSED_OPS = ("conv2d_pool_forward", "conv2d_pool_backward")  # see fused_reference.py


@_on_device
def conv2d_pool_forward(x, w, b, stride, padding, activation, pool=(2, 2)):
    """(y, indices): act(max_pool(conv2d(x, w) + b)) over non-overlapping ``pool`` windows."""
    x, w, b = _contig(x, w, b)
    g = _conv_geom("conv2d_pool_forward", x.shape, w.shape, stride, padding)
    (pool_h, pool_w), act = _pair(pool), _act("conv2d_pool_forward", activation)
    qh, qw = g[11] // max(pool_h, 1), g[12] // max(pool_w, 1)
    if pool_h < 1 or pool_w < 1 or qh < 1 or qw < 1:
        raise ValueError(f"conv2d_pool_forward: pool {pool} does not fit the conv output "
                         f"{(g[11], g[12])} of x={tuple(x.shape)}")
    if pool_h * pool_w > 4:  # beyond the fused kernel: conv, then pool, then activation
        z = conv2d_forward(x, w, b, stride, padding, None)
        zp, idx = max_pool2d_forward(z, (pool_h, pool_w), (pool_h, pool_w))
        return reference.activation_forward(zp, activation), idx
    dt = _dtype_code("conv2d_pool_forward", x, w, b)
    y = _empty((g[0], g[4], qh, qw), x.dtype)
    idx = _empty(y.shape, _cp.int64)
    _C.conv2d_pool_forward(_ptr(x), _ptr(w), _ptr(b), _ptr(y), _ptr(idx), g, act, pool_h,
                           pool_w, dt, _stream(), x.device.id)
    return y, idx


def conv2d_pool_backward(gy, x, w, y, indices, stride, padding, activation, pool=(2, 2),
                         needs=(True, True, True)):
    """Gradients (dx, dw, db) of :func:`conv2d_pool_forward`; None where not needed."""
    return conv2d_backward(gy, x, w, y, stride, padding, activation, needs,
                           _pool=(indices, _pair(pool)))


# ------------------------------------------------------------------- pooling
def _pool_geom(name, x_shape, kernel_size, stride):
    if len(x_shape) != 4:
        raise ValueError(f"{name}: expected a 4-D input shape, got {tuple(x_shape)}")
    n, c, h, w = (int(s) for s in x_shape)
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride)
    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or kh > h or kw > w:
        raise ValueError(f"{name}: bad window kernel_size={kernel_size} stride={stride} "
                         f"for input {tuple(x_shape)}")
    # Planes are indexed with 32-bit ints (indices are int64 h*W + w), planes
    # across the batch with 64-bit ones.
    _check_int32(name, {"x": (n, c, h, w)}, ("one input plane, H*W,", h * w),
                 ("the batch size", n), ("the channel count", c))
    return (n, c, h, w, c, kh, kw, sh, sw, 0, 0, (h - kh) // sh + 1, (w - kw) // sw + 1)


@_on_device
def max_pool2d_forward(x, kernel_size, stride):
    """Max over each window; returns (y, indices), int64 flat h*W + w into each plane."""
    (x,) = _contig(x)
    g = _pool_geom("max_pool2d_forward", x.shape, kernel_size, stride)
    dt = _dtype_code("max_pool2d_forward", x)
    y = _empty((g[0], g[1], g[11], g[12]), x.dtype)
    idx = _empty(y.shape, _cp.int64)
    _C.max_pool2d_forward(_ptr(x), _ptr(y), _ptr(idx), g, dt, _stream(), x.device.id)
    return y, idx


@_on_device
def max_pool2d_backward(gy, indices, x_shape, kernel_size, stride):
    """Route each output gradient to the input element that was the maximum."""
    (gy,) = _contig(gy)
    indices = _cp.ascontiguousarray(indices, dtype=_cp.int64)
    g = _pool_geom("max_pool2d_backward", x_shape, kernel_size, stride)
    if gy.shape != (g[0], g[1], g[11], g[12]) or indices.shape != gy.shape:
        raise _shape_error("max_pool2d_backward", gy=gy, indices=indices, x_shape=x_shape)
    dt = _dtype_code("max_pool2d_backward", gy)
    dx = _empty(tuple(x_shape), gy.dtype)
    _C.max_pool2d_backward(_ptr(gy), _ptr(indices), _ptr(dx), g, dt, _stream(), gy.device.id)
    return dx


@_on_device
def avg_pool2d_forward(x, kernel_size, stride):
    """Mean over each window."""
    (x,) = _contig(x)
    g = _pool_geom("avg_pool2d_forward", x.shape, kernel_size, stride)
    dt = _dtype_code("avg_pool2d_forward", x)
    y = _empty((g[0], g[1], g[11], g[12]), x.dtype)
    _C.avg_pool2d_forward(_ptr(x), _ptr(y), g, dt, _stream(), x.device.id)
    return y


@_on_device
def avg_pool2d_backward(gy, x_shape, kernel_size, stride):
    """Spread each output gradient evenly over its window."""
    (gy,) = _contig(gy)
    g = _pool_geom("avg_pool2d_backward", x_shape, kernel_size, stride)
    if gy.shape != (g[0], g[1], g[11], g[12]):
        raise _shape_error("avg_pool2d_backward", gy=gy, x_shape=x_shape)
    dt = _dtype_code("avg_pool2d_backward", gy)
    dx = _empty(tuple(x_shape), gy.dtype)
    _C.avg_pool2d_backward(_ptr(gy), _ptr(dx), g, dt, _stream(), gy.device.id)
    return dx


# ------------------------------------------------------- softmax cross-entropy
@_on_device
def cross_entropy_forward(logits, target, label_smoothing):
    """Per-sample losses (N,) and probabilities (N, C); an out-of-range target gives NaN."""
    (logits,) = _contig(logits)
    target = _cp.ascontiguousarray(target, dtype=_cp.int64)
    if logits.ndim != 2 or logits.shape[1] < 1 or target.shape != (logits.shape[0],):
        raise _shape_error("cross_entropy_forward", logits=logits, target=target)
    dt = _dtype_code("cross_entropy_forward", logits)
    n, c = logits.shape
    losses = _empty((n,), logits.dtype)
    probs = _empty((n, c), logits.dtype)
    _C.cross_entropy_forward(_ptr(logits), _ptr(target), _ptr(losses), _ptr(probs), n, c,
                             float(label_smoothing or 0.0), dt, _stream(), logits.device.id)
    return losses, probs


@_on_device
def cross_entropy_backward(glosses, probs, target, label_smoothing):
    """d(losses)/d(logits) scaled by the per-sample upstream gradient ``glosses``."""
    glosses, probs = _contig(glosses, probs)
    target = _cp.ascontiguousarray(target, dtype=_cp.int64)
    if probs.ndim != 2 or target.shape != (probs.shape[0],) or glosses.size != probs.shape[0]:
        raise _shape_error("cross_entropy_backward", glosses=glosses, probs=probs,
                           target=target)
    dt = _dtype_code("cross_entropy_backward", glosses, probs)
    n, c = probs.shape
    d = _empty((n, c), probs.dtype)
    _C.cross_entropy_backward(_ptr(glosses), _ptr(probs), _ptr(target), _ptr(d), n, c,
                              float(label_smoothing or 0.0), dt, _stream(), probs.device.id)
    return d


# ---------------------------------------------------------------- optimizers
def _in_place_ok(*arrays) -> bool:
    """A kernel can update these in place: CuPy, C-contiguous, float32/64."""
    return all(type(a).__module__.startswith("cupy") and a.flags.c_contiguous
               and a.dtype in (_cp.float32, _cp.float64) for a in arrays)


def _groups(name, params, grads, states, momentum=True):
    """Split tensors by dtype; what a kernel cannot update in place goes to ``rest``."""
    groups, rest = {}, []
    for i, p in enumerate(params):
        g = grads[i]
        if g.shape != p.shape:
            raise _shape_error(name, param=p, grad=g)
        st = [s[i] for s in states] if momentum else []
        if _in_place_ok(p, *st) and g.dtype == p.dtype:
            groups.setdefault(p.dtype, []).append(i)
        else:
            rest.append(i)
    return groups, rest


@_on_device
def sgd_step(params, grads, bufs, lr, momentum, dampening, nesterov, weight_decay, first):
    """In-place SGD over lists of arrays (PyTorch's rule), one launch per dtype."""
    params, grads = list(params), list(grads)
    bufs = list(bufs) if bufs is not None else [None] * len(params)
    groups, rest = _groups("sgd_step", params, grads, [bufs], momentum=bool(momentum))
    for dtype, idx in groups.items():
        gs = [_cp.ascontiguousarray(grads[i]) for i in idx]
        bs = [_ptr(bufs[i]) if momentum else 0 for i in idx]
        _C.sgd_step([_ptr(params[i]) for i in idx], [_ptr(g) for g in gs], bs,
                    [int(params[i].size) for i in idx], float(lr), float(momentum),
                    float(dampening), bool(nesterov), float(weight_decay), bool(first),
                    _F32 if dtype == _cp.float32 else _F64, _stream(), params[idx[0]].device.id)
    if rest:
        reference.sgd_step([params[i] for i in rest], [grads[i] for i in rest],
                           [bufs[i] for i in rest], lr, momentum, dampening, nesterov,
                           weight_decay, first)


@_on_device
def adam_step(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
              weight_decay, decoupled):
    """In-place Adam / AdamW over lists of arrays, one launch per dtype."""
    params, grads = list(params), list(grads)
    exp_avgs, exp_avg_sqs = list(exp_avgs), list(exp_avg_sqs)
    groups, rest = _groups("adam_step", params, grads, [exp_avgs, exp_avg_sqs])
    for dtype, idx in groups.items():
        gs = [_cp.ascontiguousarray(grads[i]) for i in idx]
        _C.adam_step([_ptr(params[i]) for i in idx], [_ptr(g) for g in gs],
                     [_ptr(exp_avgs[i]) for i in idx], [_ptr(exp_avg_sqs[i]) for i in idx],
                     [int(params[i].size) for i in idx], int(step), float(lr), float(beta1),
                     float(beta2), float(eps), float(weight_decay), bool(decoupled),
                     _F32 if dtype == _cp.float32 else _F64, _stream(), params[idx[0]].device.id)
    if rest:
        reference.adam_step([params[i] for i in rest], [grads[i] for i in rest],
                            [exp_avgs[i] for i in rest], [exp_avg_sqs[i] for i in rest], step,
                            lr, beta1, beta2, eps, weight_decay, decoupled)
