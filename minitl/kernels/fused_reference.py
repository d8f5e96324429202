"""Reference composites of the fused ops that go beyond :data:`minitl.kernels.OPS`.

Each is built from the reference kernels only, so it is the oracle the
native fused kernel is tested against and the path that runs without it.

``conv2d_pool``: conv2d + bias + activation + non-overlapping max-pool, the
``Conv2d -> ReLU -> MaxPool2d(2)`` block of LeNet as one op.

* forward ``(x, w, b, stride, padding, activation, pool=(2, 2)) -> (y, indices)``:
  ``z = conv2d(x, w, b)`` (no activation), ``(zp, indices) = max_pool2d(z,
  pool, stride=pool)``, ``y = act(zp)``. For the monotone activations
  (relu, tanh, sigmoid) this equals ``max_pool2d(act(z))`` exactly in value;
  the indices are those of the pre-activation maximum (first in row-major
  window order on ties), flat into the conv output plane ``OH*OW``.
* backward ``(gy, x, w, y, indices, stride, padding, activation, pool=(2, 2),
  needs=(True, True, True)) -> (dx, dw, db)``: the gradient through the
  activation (from the pooled output ``y``) is routed to ``indices``, then
  through the conv. ``None`` for a gradient ``needs`` rules out. The
  full-size conv output is never needed, so it is not kept.

``linear_backward_acc``: ``linear_backward`` adding into existing gradients.

* ``(gy, x, w, y, activation, needs, dw_acc, db_acc) -> (dx, dw, db)``: as
  ``linear_backward``, except that where ``dw_acc`` (``db_acc``) is an array
  and ``needs`` asks for dw (db), the gradient is added into it in place,
  ``dw_acc += dw`` with one rounding per element, and it is returned as dw
  (db). None: a fresh array, as ``linear_backward`` gives.
"""
from __future__ import annotations

from . import reference as R


def conv2d_pool_forward(x, w, b, stride, padding, activation, pool=(2, 2)):
    """(y, indices): y = act(maxpool(conv2d(x, w) + b)) over non-overlapping ``pool`` windows."""
    pool = tuple(pool)
    z = R.conv2d_forward(x, w, b, stride, padding, None)
    zp, indices = R.max_pool2d_forward(z, pool, pool)
    return R.activation_forward(zp.copy(), activation), indices


def conv2d_pool_backward(gy, x, w, y, indices, stride, padding, activation, pool=(2, 2),
                         needs=(True, True, True)):
    """Gradients (dx, dw, db) of :func:`conv2d_pool_forward`; None where not needed."""
    pool = tuple(pool)
    if not any(needs):
        return None, None, None
    o, _, kh, kw = w.shape
    oh = R.conv_output_size(x.shape[2], kh, stride[0], padding[0])
    ow = R.conv_output_size(x.shape[3], kw, stride[1], padding[1])
    gzp = R.activation_backward(gy, y, activation)
    gz = R.max_pool2d_backward(gzp, indices, (x.shape[0], o, oh, ow), pool, pool)
    return R.conv2d_backward(gz, x, w, None, stride, padding, None, needs)


def linear_backward_acc(gy, x, w, y, activation, needs, dw_acc, db_acc):
    """(dx, dw, db) of the fused linear, dw and db added into ``dw_acc`` / ``db_acc`` where given."""
    dx, dw, db = R.linear_backward(gy, x, w, y, activation, needs)
    if dw is not None and dw_acc is not None:
        dw_acc += dw
        dw = dw_acc
    if db is not None and db_acc is not None:
        db_acc += db
        db = db_acc
    return dx, dw, db
