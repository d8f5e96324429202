"""What every CUDA op wrapper shares: the extension, its probe, the test hooks, helpers.

``_C`` is ``minitl._C_cuda`` (or None); ``AVAILABLE`` is True when it imported
*and* runs on the current GPU; ``STATUS`` says so, or why not, in one line (the
build log ``minitl/_cuda_build.txt`` written by setup.py supplies the reason
when the extension was not built). ``_cp`` is CuPy, bound by the probe.

The op wrappers (:mod:`.cuda_linear`, :mod:`.cuda_conv`, :mod:`.cuda_norm`,
:mod:`.cuda_optim`, gathered by name in :mod:`minitl.kernels.cuda`) read
``_C``, ``_cp`` and the hooks from this module at call time, so a test swaps
them here, once, for every op.

Test hooks: with ``_POISON = True`` every output is filled with NaN (indices
with -7) before the kernel runs, so an element a kernel never writes shows up;
``_SPLITS = k`` forces k sample-splits in conv2d's weight-gradient reduction.
"""
from __future__ import annotations

import contextlib
import functools
import os


NAME = "cuda"
_POISON = False
_SPLITS = None
_ACTS = {None: 0, "relu": 1, "tanh": 2, "sigmoid": 3}
F32, F64 = 0, 1  # the kernels' dtype codes
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
def stream() -> int:
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


def on_device(fn):
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


def ptr(a) -> int:
    return 0 if a is None else int(a.data.ptr)


def dtype_code(name: str, *arrays) -> int:
    """The common float dtype of ``arrays`` (Nones ignored), as the kernel's code."""
    dts = {a.dtype for a in arrays if a is not None}
    if len(dts) == 1:
        dt = dts.pop()
        if dt == _cp.float32:
            return F32
        if dt == _cp.float64:
            return F64
    shown = ", ".join(f"{a.dtype}{tuple(a.shape)}" for a in arrays if a is not None)
    raise ValueError(f"{name}: CUDA kernels need all float32 or all float64 arrays, got {shown}")


def contig(*arrays):
    return [None if a is None else _cp.ascontiguousarray(a) for a in arrays]


def empty(shape, dtype):
    out = _cp.empty(shape, dtype=dtype)
    if _POISON:
        out.fill(-7 if out.dtype.kind == "i" else float("nan"))
    return out


def act_code(name: str, activation) -> int:
    try:
        return _ACTS[activation]
    except (KeyError, TypeError):
        raise ValueError(f"{name}: unknown activation {activation!r}; expected one of "
                         f"{tuple(_ACTS)}") from None


def pair(v) -> tuple[int, int]:
    """(h, w) from a pair, or from one int used for both."""
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


# The kernels index within one sample (and within a weight tensor) with
# 32-bit ints: half the registers and shared memory of 64-bit offsets in the
# inner loops. Positions across the batch are 64-bit. Shapes beyond that are
# rejected here, rather than read out of bounds on the device.
_INT32_MAX = 2**31 - 1


def check_int32(name: str, shapes: dict, *extents) -> None:
    """ValueError naming the first ``(what, value)`` above ``_INT32_MAX``, and the shapes."""
    for what, value in extents:
        if value > _INT32_MAX:
            shown = ", ".join(f"{k}={tuple(v)}" for k, v in shapes.items())
            raise ValueError(f"{name}: {what} is {value} for {shown}, above 2**31 - 1: the "
                             f"CUDA kernels index it with 32-bit ints")


def shape_error(name: str, **arrays) -> ValueError:
    shown = ", ".join(f"{k}={tuple(v.shape) if hasattr(v, 'shape') else v}"
                      for k, v in arrays.items())
    return ValueError(f"{name}: incompatible shapes {shown}")


def in_place_ok(*arrays) -> bool:
    """A kernel can update these in place: CuPy, C-contiguous, float32/64."""
    return all(type(a).__module__.startswith("cupy") and a.flags.c_contiguous
               and a.dtype in (_cp.float32, _cp.float64) for a in arrays)
