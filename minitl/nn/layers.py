"""The everyday layers. Linear and Conv2d accept ``activation=`` so that a
Sequential can run "layer then ReLU" as one fused kernel call."""
from __future__ import annotations

from . import functional as F
from .fused_chain import run_linear_chain
from .init import bias_uniform, kaiming_uniform
from .module import Module
from .parameter import Parameter


class Linear(Module):
    """y = x @ weight.T + bias; weight (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        shape = (out_features, in_features)
        self.weight = Parameter(kaiming_uniform(shape))
        self.register_parameter("bias", Parameter(bias_uniform(out_features, shape)) if bias else None)

    def forward(self, x, activation=None):
        return F.linear(x, self.weight, self.bias, activation=activation, layer=self._label())

    def _label(self):
        return f"Linear({self.in_features}, {self.out_features})"

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


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


class MaxPool2d(Module):
    """Max over windows; padding counts as -inf; PyTorch's ceil_mode sizes."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.padding, self.dilation, self.ceil_mode = padding, dilation, bool(ceil_mode)

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self):
        extra = "".join([f", padding={self.padding}" if self.padding != 0 else "",
                         f", dilation={self.dilation}" if self.dilation != 1 else "",
                         ", ceil_mode=True" if self.ceil_mode else ""])
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}{extra}"


class AvgPool2d(Module):
    """Mean over windows; zero padding, counted in the divisor when ``count_include_pad``."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        extra = "".join([f", padding={self.padding}" if self.padding != 0 else "",
                         ", ceil_mode=True" if self.ceil_mode else "",
                         ", count_include_pad=False" if not self.count_include_pad else ""])
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}{extra}"


class ReLU(Module):
    activation = "relu"

    def forward(self, x):
        return F.relu(x)


class Tanh(Module):
    activation = "tanh"

    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    activation = "sigmoid"

    def forward(self, x):
        return F.sigmoid(x)


class Flatten(Module):
    """Merge every dimension from ``start_dim`` on (the batch stays)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


class Dropout(Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Identity(Module):
    def forward(self, x):
        return x


_FUSABLE = (Linear, Conv2d)


def _is_tiling_max_pool(m) -> bool:
    """A MaxPool2d (not AvgPool2d) whose windows do not overlap, unpadded: fusable into the conv."""
    return (type(m) is MaxPool2d and (m.stride is None or F.pair(m.stride, "stride") == F.pair(m.kernel_size, "k"))
            and m.padding == 0 and m.dilation == 1 and not m.ceil_mode)
_ACTIVATIONS = (ReLU, Tanh, Sigmoid)


class Sequential(Module):
    """Layers called in order; indexable and sliceable (a slice is a Sequential
    sharing the same layers, keeping their original names)."""

    def __init__(self, *layers, names=None):
        super().__init__()
        names = names or [str(i) for i in range(len(layers))]
        for name, layer in zip(names, layers):
            setattr(self, name, layer)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        items = list(self._modules.items())
        if isinstance(idx, slice):
            chosen = items[idx]
            return Sequential(*[m for _, m in chosen], names=[n for n, _ in chosen])
        return items[idx][1]

    def __setitem__(self, idx, module):
        name = list(self._modules)[idx]
        setattr(self, name, module)

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self

    def forward(self, x):
        for layer, kwargs, chain in self._fused_plan():
            x = run_linear_chain(x, chain) if chain is not None else layer(x, **kwargs)
        return x

    def _fused_plan(self):
        """The fused steps ``(layer, kwargs, chain)`` for the current layers, computed
        once and kept until a layer is replaced, added or removed (or a max-pool's
        window changes): the per-call cost is one tuple comparison."""
        layers = tuple(self._modules.values())
        # A forward set on an instance (a hook, as transfer.cka sets) must run: such a
        # layer is never chained, and setting or removing one changes the key.
        key = (layers, tuple((m.kernel_size, m.stride) for m in layers if type(m) is MaxPool2d),
               tuple("forward" in m.__dict__ for m in layers))
        cached = self.__dict__.get("_plan_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = _chain_linears(_fuse_steps(list(layers)))
        object.__setattr__(self, "_plan_cache", (key, plan))
        return plan


def _fuse_steps(layers):
    """[(layer, kwargs)]: each Linear/Conv2d with the activation (and, after a conv,
    the non-overlapping max-pool) that follows it, as one fused kernel call; the
    modules and the state_dict are unchanged."""
    steps, i = [], 0
    while i < len(layers):
        layer, fused = layers[i], 1
        kwargs = {}
        if isinstance(layer, _FUSABLE):
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if type(nxt) in _ACTIVATIONS:
                kwargs["activation"], fused = nxt.activation, 2
            after = layers[i + fused] if i + fused < len(layers) else None
            if isinstance(layer, Conv2d) and layer.fusable and _is_tiling_max_pool(after):
                kwargs["pool"], fused = after.kernel_size, fused + 1
        steps.append((layer, kwargs))
        i += fused
    return steps


def _chain_linears(steps):
    """[(layer, kwargs, chain)]: two or more consecutive plain Linear steps become one
    ``chain`` of (Linear, activation), run by :func:`run_linear_chain`."""
    plan, run = [], []

    def close():
        if len(run) >= 2:
            plan.append((None, None, [(layer, kw.get("activation")) for layer, kw in run]))
        else:
            plan.extend((layer, kw, None) for layer, kw in run)
        run.clear()

    for layer, kwargs in steps:
        if type(layer) is Linear and "forward" not in layer.__dict__:
            run.append((layer, kwargs))
        else:
            close()
            plan.append((layer, kwargs, None))
    close()
    return plan
