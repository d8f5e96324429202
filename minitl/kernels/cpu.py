"""The C++ CPU kernels (``minitl._C``), exposed with the reference signatures.

Every op of :data:`minitl.kernels.OPS` is bound below by name, explicitly,
so that searching for an op's name leads here; without the extension each is
None and the dispatch falls back to the reference. ``AVAILABLE`` says whether the
extension imported, ``STATUS`` says how it was built (or why not) in one line.

Beyond :data:`OPS`, ``_C`` provides the fused ``conv2d_pool_forward`` /
``conv2d_pool_backward`` (conv + bias + activation + 2x2 max-pool) and
``linear_backward_acc`` (linear_backward adding into existing gradients); see
:mod:`minitl.kernels.fused_reference` for their exact contracts.
"""
from __future__ import annotations

import os

NAME = "cpu"

# Idle OpenMP workers spin this long (libgomp's default, 300000, is
# milliseconds) before sleeping: long enough to bridge the Python between two
# kernels of a training step, short enough that a worker waiting on a shared,
# busy machine does not steal the core its partner needs. Read when libgomp
# loads, so it is set before _C is imported; a user's own setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "2000")

try:
    from .. import _C
except ImportError as exc:  # not built, or built for another Python
    _C = None
    AVAILABLE = False
    STATUS = (f"C++ kernels not built ({exc.__class__.__name__}: {exc}); build them with "
              "`python setup.py build_ext --inplace` or `pip install -e .`")
else:
    AVAILABLE = True
    STATUS = ""


def _status() -> str:
    info = _C.build_info()
    omp = "OpenMP" if info["openmp"] else "no OpenMP (serial)"
    n = _C.get_num_threads()
    return (f"C++ kernels built with {omp}, {n} thread{'s' if n != 1 else ''}, "
            f"GEMM={info['gemm']}, SIMD={info['simd']}, ISA={info['isa_status']}")


def set_num_threads(n: int) -> None:
    """Threads every C++ kernel uses from now on (1 when built without OpenMP)."""
    global STATUS
    if _C is not None:
        _C.set_num_threads(int(n))
        STATUS = _status()


def get_num_threads() -> int:
    """Threads the C++ kernels use (OpenMP's default honours ``OMP_NUM_THREADS``)."""
    return _C.get_num_threads() if _C is not None else 1


if _C is not None:
    STATUS = _status()

# The ops ``_C`` provides, under the reference signatures (dispatch.OPS and
# dispatch.FUSED_OPS); the dispatch reads them by name.
linear_forward = _C.linear_forward if _C is not None else None
linear_backward = _C.linear_backward if _C is not None else None
linear_backward_acc = _C.linear_backward_acc if _C is not None else None
conv2d_forward = _C.conv2d_forward if _C is not None else None
conv2d_backward = _C.conv2d_backward if _C is not None else None
conv2d_pool_forward = _C.conv2d_pool_forward if _C is not None else None
conv2d_pool_backward = _C.conv2d_pool_backward if _C is not None else None
max_pool2d_forward = _C.max_pool2d_forward if _C is not None else None
max_pool2d_backward = _C.max_pool2d_backward if _C is not None else None
avg_pool2d_forward = _C.avg_pool2d_forward if _C is not None else None
avg_pool2d_backward = _C.avg_pool2d_backward if _C is not None else None
cross_entropy_forward = _C.cross_entropy_forward if _C is not None else None
cross_entropy_backward = _C.cross_entropy_backward if _C is not None else None
sgd_step = _C.sgd_step if _C is not None else None
adam_step = _C.adam_step if _C is not None else None
batch_norm_forward = _C.batch_norm_forward if _C is not None else None
batch_norm_backward = _C.batch_norm_backward if _C is not None else None
