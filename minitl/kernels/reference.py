"""Reference kernels: plain NumPy/CuPy, written once against ``xp``.

These are the oracle every native kernel is tested against, and the path
that runs when no compiled kernel is available. Each fused op has the same
signature in every backend (reference, ``minitl._C``, ``minitl._C_cuda``):

* arrays are raw ``numpy``/``cupy`` arrays, float32 or float64;
* geometry arguments are already normalised: ``stride``, ``padding`` and
  ``kernel_size`` are ``(h, w)`` tuples of ints;
* ``activation`` is ``None``, ``'relu'``, ``'tanh'`` or ``'sigmoid'``; its
  derivative is taken from the *output* ``y``, so backward never needs the
  pre-activation;
* backward takes ``needs=(dx, dw, db)`` booleans and returns ``None`` for a
  gradient that is not needed (a frozen layer costs no weight gradient, a
  first layer no input gradient).
"""
from __future__ import annotations

from ..core.backend import get_array_module, quiet_errors

ACTIVATIONS = (None, "relu", "tanh", "sigmoid")


# ---------------------------------------------------------------- activation
def activation_forward(z, activation):
    """Apply ``activation`` to ``z`` in place where possible; returns the result."""
    xp = get_array_module(z)
    if activation is None:
        return z
    if activation == "relu":
        return xp.maximum(z, 0, out=z)
    if activation == "tanh":
        return xp.tanh(z, out=z)
    if activation == "sigmoid":
        # 1/(1+exp(-z)) overflows harmlessly to 0 for very negative z.
        with quiet_errors(xp, over="ignore"):
            return xp.divide(1, 1 + xp.exp(-z), out=z)
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def activation_backward(gy, y, activation):
    """Gradient through ``activation`` given its output ``y``."""
    if activation is None:
        return gy
    if activation == "relu":
        return gy * (y > 0)
    if activation == "tanh":
        return gy * (1 - y * y)
    if activation == "sigmoid":
        return gy * y * (1 - y)
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


# -------------------------------------------------------------------- linear
def linear_forward(x, w, b, activation):
    """y = act(x @ w.T + b); x (N, in), w (out, in), b (out,) or None."""
    y = x @ w.T
    if b is not None:
        y += b
    return activation_forward(y, activation)


def linear_backward(gy, x, w, y, activation, needs=(True, True, True)):
    """Gradients (dx, dw, db) of the fused linear; None where not needed."""
    gz = activation_backward(gy, y, activation)
    dx = gz @ w if needs[0] else None
    dw = gz.T @ x if needs[1] else None
    db = gz.sum(axis=0) if needs[2] else None
    return dx, dw, db


# -------------------------------------------------------------------- im2col
def conv_output_size(size, kernel, stride, padding):
    """Output length of a convolution or pooling window along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def _pad(x, padding):
    xp = get_array_module(x)
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _windows(x, kernel, stride):
    """A strided view (N, C, OH, OW, kh, kw) of every window of ``x``; no copy."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = stride
    oh = (h - kh) // sh + 1
    ow = (w - kw) // sw + 1
    s0, s1, s2, s3 = x.strides
    return xp.lib.stride_tricks.as_strided(
        x, shape=(n, c, oh, ow, kh, kw), strides=(s0, s1, s2 * sh, s3 * sw, s2, s3)
    )


def im2col(x, kernel, stride, padding):
    """Columns (N*OH*OW, C*kh*kw) of the padded input, one row per output pixel."""
    n, c = x.shape[:2]
    win = _windows(_pad(x, padding), kernel, stride)
    oh, ow = win.shape[2:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kernel[0] * kernel[1])


def col2im(cols, x_shape, kernel, stride, padding):
    """Adjoint of :func:`im2col`: scatter-add columns back into an (N, C, H, W) array."""
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    cols = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    out = xp.zeros((n, c, h + 2 * ph + sh, w + 2 * pw + sw), dtype=cols.dtype)
    # One strided add per kernel offset: kh*kw vectorised adds, not a pixel loop.
    for i in range(kh):
        for j in range(kw):
            out[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += cols[:, :, i, j]
    return out[:, :, ph : ph + h, pw : pw + w]


# -------------------------------------------------------------------- conv2d
def conv2d_forward(x, w, b, stride, padding, activation):
    """y = act(conv2d(x, w) + b); x (N, C, H, W), w (O, C, kh, kw)."""
    n = x.shape[0]
    o, _, kh, kw = w.shape
    cols = im2col(x, (kh, kw), stride, padding)
    oh = conv_output_size(x.shape[2], kh, stride[0], padding[0])
    ow = conv_output_size(x.shape[3], kw, stride[1], padding[1])
    z = linear_forward(cols, w.reshape(o, -1), b, activation)
    return z.reshape(n, oh, ow, o).transpose(0, 3, 1, 2).copy()


def conv2d_backward(gy, x, w, y, stride, padding, activation, needs=(True, True, True)):
    """Gradients (dx, dw, db) of the fused conv2d; None where not needed."""
    o, _, kh, kw = w.shape
    gz = activation_backward(gy, y, activation)
    gz = gz.transpose(0, 2, 3, 1).reshape(-1, o)
    dx = dw = db = None
    if needs[1]:
        dw = (gz.T @ im2col(x, (kh, kw), stride, padding)).reshape(w.shape)
    if needs[2]:
        db = gz.sum(axis=0)
    if needs[0]:
        dx = col2im(gz @ w.reshape(o, -1), x.shape, (kh, kw), stride, padding)
        dx = dx.copy()
    return dx, dw, db


# ------------------------------------------------------------------- pooling
def max_pool2d_forward(x, kernel_size, stride):
    """Max over each window; returns (y, indices), indices flat into the H*W plane."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    kh, kw = kernel_size
    win = _windows(x, kernel_size, stride)
    oh, ow = win.shape[2:4]
    flat = win.reshape(n, c, oh, ow, kh * kw)
    arg = flat.argmax(axis=-1)
    y = xp.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    # Window-local argmax -> flat index h*W + w in the input plane.
    rows = xp.arange(oh).reshape(oh, 1) * stride[0] + arg // kw
    cols = xp.arange(ow).reshape(1, ow) * stride[1] + arg % kw
    return y, rows * w + cols


def max_pool2d_backward(gy, indices, x_shape, kernel_size, stride):
    """Route each output gradient to the input element that was the maximum."""
    xp = get_array_module(gy)
    n, c, h, w = x_shape
    dx = xp.zeros((n * c, h * w), dtype=gy.dtype)
    idx = indices.reshape(n * c, -1).astype(xp.int64)
    rows = xp.arange(n * c).reshape(-1, 1)
    # Windows may overlap (stride < kernel): accumulate, don't assign.
    _scatter_add(dx, (xp.broadcast_to(rows, idx.shape), idx), gy.reshape(n * c, -1))
    return dx.reshape(x_shape)


def avg_pool2d_forward(x, kernel_size, stride):
    """Mean over each window."""
    return _windows(x, kernel_size, stride).mean(axis=(4, 5))


def avg_pool2d_backward(gy, x_shape, kernel_size, stride):
    """Spread each output gradient evenly over its window."""
    kh, kw = kernel_size
    n, c = x_shape[:2]
    oh, ow = gy.shape[2:]
    cols = (gy / (kh * kw)).transpose(0, 2, 3, 1)[..., None]
    cols = get_array_module(gy).broadcast_to(cols, (n, oh, ow, c, kh * kw))
    return col2im(cols.reshape(n * oh * ow, -1), x_shape, kernel_size, stride, (0, 0)).copy()


def _scatter_add(target, index, values):
    xp = get_array_module(target)
    if xp.__name__ == "numpy":
        xp.add.at(target, index, values)
    else:  # pragma: no cover - GPU only
        import cupyx

        cupyx.scatter_add(target, index, values)


# ------------------------------------------------------- softmax cross-entropy
def cross_entropy_forward(logits, target, label_smoothing):
    """Per-sample losses (N,) and softmax probabilities (N, C) of 2-D logits.

    With label smoothing ``s`` the target distribution is ``(1-s)`` on the
    true class plus ``s/C`` on every class, as in PyTorch.
    """
    xp = get_array_module(logits)
    n, c = logits.shape
    shifted = logits - logits.max(axis=1, keepdims=True)
    sumexp = xp.exp(shifted).sum(axis=1, keepdims=True)
    logp = shifted - xp.log(sumexp)
    picked = logp[xp.arange(n), target]
    losses = -(1 - label_smoothing) * picked
    if label_smoothing:
        losses = losses - label_smoothing / c * logp.sum(axis=1)
    return losses, xp.exp(logp)


def cross_entropy_backward(glosses, probs, target, label_smoothing):
    """d(losses)/d(logits) scaled by the per-sample upstream gradient ``glosses``."""
    xp = get_array_module(probs)
    n, c = probs.shape
    g = probs - label_smoothing / c
    g[xp.arange(n), target] -= 1 - label_smoothing
    return g * glosses.reshape(n, 1)


# ---------------------------------------------------------------- optimizers
def sgd_step(params, grads, bufs, lr, momentum, dampening, nesterov, weight_decay, first):
    """In-place SGD over lists of arrays, PyTorch's update rule.

    ``bufs`` holds the momentum buffers (ignored when ``momentum == 0``);
    ``first`` says they are fresh, in which case PyTorch sets ``buf = g``.
    """
    for p, g, buf in zip(params, grads, bufs):
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            if first:
                buf[...] = g
            else:
                buf *= momentum
                buf += (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p -= lr * g


def adam_step(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
              weight_decay, decoupled):
    """In-place Adam (``decoupled=False``) or AdamW (``decoupled=True``) over lists.

    ``step`` is the 1-based step count after this update, shared by the group.
    """
    xp = get_array_module(params[0]) if params else None
    bc1 = 1 - beta1 ** step
    bc2 = 1 - beta2 ** step
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        if weight_decay:
            if decoupled:
                p *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * p
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        denom = xp.sqrt(v / bc2) + eps
        p -= (lr / bc1) * m / denom
