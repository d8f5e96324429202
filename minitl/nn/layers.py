"""The everyday layers. Linear and Conv2d (conv.py) accept ``activation=`` so that a
Sequential can run "layer then ReLU" as one fused kernel call."""
from __future__ import annotations

import functools

from . import functional as F
from .conv import Conv2d
from .conv_bn_fold import conv_bn_act
from .fused_chain import run_linear_chain
from .init import bias_uniform, kaiming_uniform
from .module import Module
from .norm import BatchNorm2d
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
    the non-overlapping max-pool) that follows it, as one fused kernel call, and a
    Conv2d -> BatchNorm2d [-> act] [-> pool] as one ``conv_bn_act`` step (folded
    in eval mode without gradients); the modules and the state_dict are unchanged."""
    steps, i = [], 0
    while i < len(layers):
        layer, fused = layers[i], 1
        kwargs = {}
        folded = _conv_bn_step(layers, i)
        if folded is not None:
            layer, kwargs, fused = folded
        elif isinstance(layer, _FUSABLE):
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if type(nxt) in _ACTIVATIONS:
                kwargs["activation"], fused = nxt.activation, 2
            after = layers[i + fused] if i + fused < len(layers) else None
            if isinstance(layer, Conv2d) and layer.fusable and _is_tiling_max_pool(after):
                kwargs["pool"], fused = after.kernel_size, fused + 1
        steps.append((layer, kwargs))
        i += fused
    return steps


def _unhooked(m) -> bool:
    return "forward" not in m.__dict__


def _conv_bn_step(layers, i):
    """``(step, kwargs, n_layers)`` when ``layers[i:]`` starts Conv2d -> BatchNorm2d
    [-> activation] [-> tiling max-pool]: one :func:`conv_bn_act` call, which folds the
    BatchNorm into the conv in eval mode without gradients and otherwise runs the
    layers one by one as before; else None."""
    conv = layers[i]
    bn = layers[i + 1] if i + 1 < len(layers) else None
    if not (isinstance(conv, Conv2d) and type(bn) is BatchNorm2d):
        return None
    kwargs, n = {}, 2
    act = layers[i + n] if i + n < len(layers) else None
    if type(act) in _ACTIVATIONS and _unhooked(act):  # a hooked layer must see its input: left out
        kwargs["activation"], n = act.activation, n + 1
    pool = layers[i + n] if i + n < len(layers) else None
    if _is_tiling_max_pool(pool) and _unhooked(pool):
        kwargs["pool"], n = pool.kernel_size, n + 1
    return functools.partial(conv_bn_act, conv, bn), kwargs, n


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
