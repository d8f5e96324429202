"""Kernels: one dispatch point per fused op, over three implementations.

- :mod:`.reference` (and :mod:`.fused_reference`): NumPy/CuPy, the oracle of the tests;
- :mod:`.cpu`: the C++ extension ``minitl._C``;
- :mod:`.cuda`: the CUDA extension ``minitl._C_cuda``;
- :mod:`.dispatch`: picks the fastest available per op and device.
"""
from .dispatch import (FUSED_OPS, MODES, OPS, active, cpu_kernels_status, cuda_kernels_status, get,
                       get_beside, mode, use)

__all__ = ["OPS", "FUSED_OPS", "MODES", "get", "get_beside", "active", "mode", "use", "cpu_kernels_status",
           "cuda_kernels_status"]
