"""The single dispatch point for fused ops: CUDA extension -> CPU extension -> reference.

Every backend module exposes some of :data:`OPS` with the signatures of
:mod:`minitl.kernels.reference` (BatchNorm's: :mod:`minitl.kernels.norm_reference`).
:func:`get` returns the fastest
implementation available for a device; an op a backend lacks falls back to
the reference, so a backend can grow one kernel at a time.

``MINITL_KERNELS=reference`` (or :func:`use('reference')`) forces the
reference path everywhere, so a user can compare; ``native`` (the default,
also spelled ``auto``) takes the compiled kernels where they are built: the
C++ ones of :mod:`minitl.kernels.cpu` for CPU arrays, the CUDA ones of
:mod:`minitl.kernels.cuda` for GPU arrays.
"""
from __future__ import annotations

import os

from . import fused_reference, norm_reference, reference

OPS = (
    "linear_forward", "linear_backward",
    "conv2d_forward", "conv2d_backward",
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "cross_entropy_forward", "cross_entropy_backward",
    "sgd_step", "adam_step",
    "batch_norm_forward", "batch_norm_backward",
)
# The module holding each op's reference kernel.
_REFERENCE_OF = {op: reference for op in OPS}
_REFERENCE_OF.update(batch_norm_forward=norm_reference, batch_norm_backward=norm_reference)
# Fused ops beyond the card's list; their reference is a composite of the above.
FUSED_OPS = ("conv2d_pool_forward", "conv2d_pool_backward", "linear_backward_acc")
MODES = ("native", "auto", "reference")

_mode: str | None = None
_tables: dict[str, dict] = {}


def mode() -> str:
    """The current choice: ``'native'`` or ``'reference'``."""
    global _mode
    if _mode is None:
        use(os.environ.get("MINITL_KERNELS", "native"))
    return _mode


def use(choice: str) -> None:
    """Force ``'reference'`` kernels, or go back to ``'native'`` (fastest available)."""
    global _mode
    choice = choice.strip().lower() or "native"
    if choice not in MODES:
        raise ValueError(f"MINITL_KERNELS={choice!r} is not one of {MODES}")
    _mode = "native" if choice == "auto" else choice
    _tables.clear()


def _native_module(device: str):
    """The compiled backend for ``device`` (a module exposing ops), or None."""
    try:
        if device == "cuda":
            from . import cuda as mod
        else:
            from . import cpu as mod
    except ImportError:
        return None
    return mod if getattr(mod, "AVAILABLE", False) else None


def _table(device: str) -> dict:
    table = _tables.get(device)
    if table is None:
        table = {op: (getattr(_REFERENCE_OF[op], op), "reference") for op in OPS}
        table.update({op: (getattr(fused_reference, op), "reference") for op in FUSED_OPS})
        mod = _native_module(device) if mode() == "native" else None
        if mod is not None:
            for op in OPS + FUSED_OPS:
                fn = getattr(mod, op, None)
                if fn is not None:
                    table[op] = (fn, mod.NAME)
        _tables[device] = table
    return table


def get(op: str, device: str = "cpu"):
    """The implementation of ``op`` to use for arrays on ``device``."""
    return _table(device)[op][0]


def get_beside(op: str, other: str, device: str = "cpu"):
    """``op``'s implementation when the backend serving ``other`` on ``device``
    serves it too, else None (a composite reference would replace a native
    ``other``)."""
    table = _table(device)
    fn, name = table[op]
    return fn if name == table[other][1] else None


def active(device: str = "cpu") -> dict[str, str]:
    """Which backend serves each op on ``device``: ``{op: 'reference'|'cpu'|'cuda'}``."""
    return {op: name for op, (_, name) in _table(device).items()}


def cpu_kernels_status() -> tuple[bool, str]:
    """(built, one line) for the C++ CPU extension."""
    try:
        from . import cpu
    except ImportError as exc:
        return False, f"minitl._C could not be imported: {exc}"
    return cpu.AVAILABLE, cpu.STATUS


def cuda_kernels_status() -> tuple[bool, str]:
    """(built, one line) for the CUDA extension."""
    try:
        from . import cuda
    except ImportError as exc:
        return False, f"minitl._C_cuda could not be imported ({exc}); ops run on CuPy's reference path"
    return cuda.AVAILABLE, cuda.STATUS
