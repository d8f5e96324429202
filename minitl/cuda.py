"""The GPU at a glance: is it usable, and if not, why (one line)."""
from __future__ import annotations

from .core import backend


def is_available() -> bool:
    """True when tensors can be placed on ``'cuda'``."""
    return backend.cuda_available()


def why_unavailable() -> str | None:
    """One line saying why CUDA cannot be used (None when it can).

    When the GPU works but the compiled CUDA kernels are missing, the line
    says that too, since ops then run on CuPy's reference path.
    """
    reason = backend.cuda_unavailable_reason()
    if reason is not None:
        return reason
    from .kernels import cuda_kernels_status

    ok, why = cuda_kernels_status()
    return None if ok else why


def device_name() -> str | None:
    """The GPU's name, or None without one."""
    if not is_available():
        return None
    cp = backend.cupy()
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else name


def synchronize() -> None:
    """Wait for all queued GPU work (no-op without a GPU)."""
    if is_available():
        backend.cupy().cuda.Stream.null.synchronize()
