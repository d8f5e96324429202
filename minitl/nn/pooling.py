"""Adaptive pooling layers (global average pooling is ``AdaptiveAvgPool2d(1)``)."""
from __future__ import annotations

from . import window_functions as WF
from .module import Module


class AdaptiveAvgPool2d(Module):
    """Mean over PyTorch's adaptive bins to a fixed ``output_size``."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return WF.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(AdaptiveAvgPool2d):
    """Max over PyTorch's adaptive bins to a fixed ``output_size``."""

    def forward(self, x):
        return WF.adaptive_max_pool2d(x, self.output_size)
