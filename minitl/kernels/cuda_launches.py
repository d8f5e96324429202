"""Counting the GPU work of a training step, for the benchmark's launches/step.

Two measures: :func:`launch_count`, the kernels launched through
``minitl._C_cuda`` so far (a counter in the extension), and
:func:`count_kernels`, every operation a step enqueues, CuPy's included,
found by capturing the step into a CUDA graph and counting its nodes.
"""
from __future__ import annotations

from . import cuda_base


def launch_count() -> int:
    """Kernels launched through ``minitl._C_cuda`` since import (0 if not built)."""
    return cuda_base._C.launch_count() if cuda_base._C is not None else 0


def count_kernels(step) -> dict[str, int]:
    """Every GPU operation ``step()`` enqueues, ours and CuPy's, counted by capture.

    ``step`` runs once under a relaxed CUDA stream capture on a fresh stream;
    the captured graph's nodes are counted and the graph is discarded, so the
    step's work is *not* executed. Run ``step`` once beforehand (warm pools,
    initialised optimizer state) and keep host<->device copies and
    synchronisations (``.item()``, ``.get()``) out of it: they are illegal
    during a capture. Returns ``{'kernels', 'memcpy', 'memset', 'other',
    'minitl'}`` where ``minitl`` counts the launches made through ``_C_cuda``.
    """
    if cuda_base._C is None or cuda_base._cp is None:
        raise RuntimeError(f"count_kernels needs the CUDA kernels: {cuda_base.STATUS}")
    stream, dev = cuda_base._cp.cuda.Stream(non_blocking=True), cuda_base._cp.cuda.Device().id
    before = cuda_base._C.launch_count()
    with stream:
        cuda_base._C.capture_begin(stream.ptr, dev)
        try:
            step()
        except BaseException:
            try:  # end the capture so the stream is usable; the step's error wins
                cuda_base._C.capture_end(stream.ptr, dev)
            except RuntimeError:
                pass
            raise
        kernels, memcpy, memset, other = cuda_base._C.capture_end(stream.ptr, dev)
    return {"kernels": kernels, "memcpy": memcpy, "memset": memset, "other": other,
            "minitl": cuda_base._C.launch_count() - before}
