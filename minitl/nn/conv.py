"""``Conv2d``: the 2-D convolution layer (its own file so that
:mod:`conv_bn_fold` can know it while ``Sequential``, in :mod:`layers`, uses the fold)."""
from __future__ import annotations

from . import functional as F
from .init import bias_uniform, kaiming_uniform
from .module import Module
from .parameter import Parameter


class Conv2d(Module):
    """2-D convolution; weight (out_channels, in_channels / groups, kh, kw).

    ``padding`` is an int, a pair, ``'valid'`` or ``'same'`` (stride 1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True):
        super().__init__()
        kh, kw = F.pair(kernel_size, "kernel_size")
        if not isinstance(groups, int) or groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups!r} must be a positive int dividing in_channels "
                             f"({in_channels}) and out_channels ({out_channels})")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
            if padding == "same" and F.pair(stride, "stride") != (1, 1):
                raise ValueError(f"Conv2d: padding='same' needs stride 1, got stride {stride}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = (kh, kw), F.pair(stride, "stride")
        self.padding = padding if isinstance(padding, str) else F.pair(padding, "padding")
        self.dilation = F.pair(dilation, "dilation")
        shape = (out_channels, in_channels // groups, kh, kw)
        self.weight = Parameter(kaiming_uniform(shape))
        self.register_parameter("bias", Parameter(bias_uniform(out_channels, shape)) if bias else None)

    @property
    def fusable(self) -> bool:
        """True when the fused kernels serve this geometry (and a pool can join the call)."""
        return self.groups == 1 and self.dilation == (1, 1) and not isinstance(self.padding, str)

    def forward(self, x, activation=None, pool=None):
        """The convolution; ``activation`` and a following non-overlapping max-``pool``
        can be fused into the same kernel call (Sequential does this)."""
        if pool is not None and self.fusable:
            return F.conv2d_pool(x, self.weight, self.bias, self.stride, self.padding, activation=activation,
                                 pool=pool, layer=self._label())
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                     activation=activation, layer=self._label())
        return y if pool is None else F.max_pool2d(y, pool)

    def _label(self):
        return f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size})"

    def extra_repr(self):
        extra = "".join([f", dilation={self.dilation}" if self.dilation != (1, 1) else "",
                         f", groups={self.groups}" if self.groups != 1 else "",
                         ", bias=False" if self.bias is None else ""])
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}{extra}")
