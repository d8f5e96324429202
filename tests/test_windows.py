"""Grouped / dilated / 'same' convolution, padded / dilated / ceil-mode pooling,
adaptive pooling and interpolate: forward against direct loops written from
PyTorch's definitions, float64 gradient checks, routing and errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minitl
import minitl.nn.functional as F
from minitl import nn
from minitl.core.gradcheck import gradcheck
from hypothesis_shapes import arrays, leaf


def direct_conv(x, w, b, stride, pads, dilation, groups):
    """Loop-by-definition convolution; pads (top, bottom, left, right)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))
    oh = (h + pads[0] + pads[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + pads[2] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                for ic in range(cg):
                    for a in range(kh):
                        for bb in range(kw):
                            y[:, oc, i, j] += (w[oc, ic, a, bb] *
                                               xp[:, g * cg + ic, i * stride[0] + a * dilation[0],
                                                  j * stride[1] + bb * dilation[1]])
        if b is not None:
            y[:, oc] += b[oc]
    return y


@st.composite
def grouped_geometry(draw):
    groups = draw(st.integers(1, 3))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, d[0] * (k[0] - 1) + 1 - 2 * p[0]), 6))
    w = draw(st.integers(max(1, d[1] * (k[1] - 1) + 1 - 2 * p[1]), 6))
    return draw(st.integers(1, 2)), groups, cg, og, h, w, k, s, p, d


@given(data=st.data(), g=grouped_geometry(), bias=st.booleans())
def test_grouped_dilated_conv(data, g, bias):
    n, groups, cg, og, h, w, k, s, p, d = g
    x = leaf(data.draw(arrays((n, groups * cg, h, w))))
    wt = leaf(data.draw(arrays((groups * og, cg) + k)))
    b = leaf(data.draw(arrays((groups * og,)))) if bias else None
    want = direct_conv(x.data, wt.data, None if b is None else b.data, s, (p[0], p[0], p[1], p[1]), d, groups)
    got = F.conv2d(x, wt, b, s, p, d, groups)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    inputs = [x, wt] + ([b] if bias else [])
    gradcheck(lambda *t: F.conv2d(t[0], t[1], t[2] if bias else None, s, p, d, groups), inputs, mode="direction")


@given(data=st.data(), k=st.sampled_from([(1, 1), (2, 2), (3, 3), (2, 3), (4, 1)]), d=st.integers(1, 2))
def test_same_padding_keeps_the_size_and_puts_the_odd_pixel_last(data, k, d):
    x = leaf(data.draw(arrays((1, 2, 5, 4))))
    wt = leaf(data.draw(arrays((3, 2) + k)))
    y = F.conv2d(x, wt, None, 1, "same", d)
    assert y.shape == (1, 3, 5, 4)
    th, tw = d * (k[0] - 1), d * (k[1] - 1)
    want = direct_conv(x.data, wt.data, None, (1, 1), (th // 2, th - th // 2, tw // 2, tw - tw // 2), (d, d), 1)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-10, atol=1e-12)
    gradcheck(lambda a, b: F.conv2d(a, b, None, 1, "same", d), [x, wt], mode="direction")


def test_conv_layer_options_and_errors():
    c = nn.Conv2d(4, 6, 3, padding="same", groups=2, bias=False)
    assert c.weight.shape == (6, 2, 3, 3) and c.bias is None and list(c.state_dict()) == ["weight"]
    assert c(minitl.tensor(np.zeros((1, 4, 5, 5), np.float32))).shape == (1, 6, 5, 5)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="stride 1"):
        nn.Conv2d(4, 6, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="input channels"):
        F.conv2d(minitl.tensor(np.zeros((1, 3, 5, 5))), minitl.tensor(np.zeros((4, 2, 3, 3))), groups=2)
    # a grouped conv inside a Sequential is not fused with its pool, and still correct
    seq = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(2))
    x = minitl.tensor(np.random.default_rng(0).normal(size=(1, 2, 4, 4)))
    np.testing.assert_allclose(seq(x).numpy(), F.max_pool2d(F.relu(seq[0](x)), 2).numpy())


def torch_pool_size(size, k, s, p, d, ceil):
    """PyTorch's pooling_output_shape."""
    o = (size + 2 * p - d * (k - 1) - 1 + ((s - 1) if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= size + p:
        o -= 1
    return o


def direct_max_pool(x, k, s, p, d, ceil):
    n, c, h, w = x.shape
    oh, ow = (torch_pool_size(h, k[0], s[0], p[0], d[0], ceil), torch_pool_size(w, k[1], s[1], p[1], d[1], ceil))
    y = np.full((n, c, oh, ow), -np.inf)
    for i in range(oh):
        for j in range(ow):
            for a in range(k[0]):
                for b in range(k[1]):
                    r, q = i * s[0] - p[0] + a * d[0], j * s[1] - p[1] + b * d[1]
                    if 0 <= r < h and 0 <= q < w:
                        y[:, :, i, j] = np.maximum(y[:, :, i, j], x[:, :, r, q])
    return y


def direct_avg_pool(x, k, s, p, ceil, include):
    n, c, h, w = x.shape
    oh, ow = (torch_pool_size(h, k[0], s[0], p[0], 1, ceil), torch_pool_size(w, k[1], s[1], p[1], 1, ceil))
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
            size = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            div = size if include else (h1 - h0) * (w1 - w0)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / div
    return y


@st.composite
def padded_pool(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = draw(st.integers(d[0] * (k[0] - 1) + 1, 7))
    w = draw(st.integers(d[1] * (k[1] - 1) + 1, 7))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w), k, s, p, d, draw(st.booleans())


@given(data=st.data(), g=padded_pool())
def test_max_pool_padding_dilation_ceil(data, g):
    shape, k, s, p, d, ceil = g
    x = leaf(data.draw(arrays(shape)))
    y = F.max_pool2d(x, k, s, p, d, ceil)
    np.testing.assert_array_equal(y.numpy(), direct_max_pool(x.data, k, s, p, d, ceil))
    gradcheck(lambda t: F.max_pool2d(t, k, s, p, d, ceil), [x], mode="direction")


@given(data=st.data(), g=padded_pool(), include=st.booleans())
def test_avg_pool_padding_ceil_count_include_pad(data, g, include):
    shape, k, s, p, _, ceil = g
    x = leaf(data.draw(arrays(shape)))
    y = F.avg_pool2d(x, k, s, p, ceil, include)
    np.testing.assert_allclose(y.numpy(), direct_avg_pool(x.data, k, s, p, ceil, include), rtol=1e-12)
    gradcheck(lambda t: F.avg_pool2d(t, k, s, p, ceil, include), [x], mode="direction")


def test_resnet_stem_pool_by_hand():
    # MaxPool2d(3, 2, padding=1) on a 4x4 ramp: windows centred on even pixels
    x = minitl.tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(nn.MaxPool2d(3, 2, padding=1)(x).numpy()[0, 0], [[5, 7], [13, 15]])
    # ceil_mode keeps the partial window at the end: 5 -> 3 outputs with k=s=2
    x5 = minitl.tensor(np.arange(25.0).reshape(1, 1, 5, 5))
    assert nn.MaxPool2d(2, ceil_mode=True)(x5).shape == (1, 1, 3, 3)
    assert nn.MaxPool2d(2)(x5).shape == (1, 1, 2, 2)
    # count_include_pad: the corner window of a 3x3 avg pool with padding 1 holds 4 real values of 9
    ones = minitl.tensor(np.ones((1, 1, 3, 3)))
    assert nn.AvgPool2d(3, 1, padding=1)(ones).numpy()[0, 0, 0, 0] == pytest.approx(4 / 9)
    assert nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)(ones).numpy()[0, 0, 0, 0] == 1.0
    with pytest.raises(ValueError, match="at most half"):
        F.max_pool2d(x, 2, padding=2)


def test_max_pool_nan_propagates():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = np.nan  # only in the first window
    y = F.max_pool2d(minitl.tensor(x), 3, 2, padding=1).numpy()
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 1, 1])


def _bins(size, out):
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


@given(data=st.data(), h=st.integers(1, 7), w=st.integers(1, 7), oh=st.integers(1, 4), ow=st.integers(1, 4),
       mode=st.sampled_from(["avg", "max"]))
def test_adaptive_pools(data, h, w, oh, ow, mode):
    x = leaf(data.draw(arrays((2, 2, h, w))))
    fn = F.adaptive_avg_pool2d if mode == "avg" else F.adaptive_max_pool2d
    red = np.mean if mode == "avg" else np.max
    want = np.stack([np.stack([red(x.data[:, :, a:b, c:d], axis=(2, 3)) for c, d in _bins(w, ow)], -1)
                     for a, b in _bins(h, oh)], -2)
    np.testing.assert_allclose(fn(x, (oh, ow)).numpy(), want, rtol=1e-12)
    gradcheck(lambda t: fn(t, (oh, ow)), [x], mode="direction")


def test_adaptive_layers_and_identity():
    x = minitl.tensor(np.random.default_rng(0).normal(size=(2, 3, 4, 4)))
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(x).numpy(), x.numpy().mean((2, 3), keepdims=True))
    np.testing.assert_array_equal(nn.AdaptiveMaxPool2d((1, None))(x).numpy(), x.numpy().max(2, keepdims=True))
    assert nn.Identity()(x) is x
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(x, 0)


def test_interpolate_by_hand():
    x = minitl.tensor(np.array([[[[0.0, 1.0], [2.0, 3.0]]]]))
    np.testing.assert_array_equal(F.interpolate(x, scale_factor=2).numpy()[0, 0],
                                  np.repeat(np.repeat(x.numpy()[0, 0], 2, 0), 2, 1))
    # bilinear, half-pixel centres (PyTorch's align_corners=False): row [0, 1] -> [0, .25, .75, 1]
    row = minitl.tensor(np.array([[[[0.0, 1.0]]]]))
    np.testing.assert_allclose(F.interpolate(row, size=(1, 4), mode="bilinear").numpy()[0, 0, 0],
                               [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(F.interpolate(x, size=3, mode="bilinear", align_corners=True).numpy()[0, 0],
                               [[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]])
    # nearest downsampling picks floor(dst * in / out)
    x5 = minitl.tensor(np.arange(5.0).reshape(1, 1, 1, 5))
    np.testing.assert_array_equal(F.interpolate(x5, size=(1, 2)).numpy()[0, 0, 0], [0, 2])
    with pytest.raises(ValueError, match="exactly one"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="mode"):
        F.interpolate(x, size=3, mode="bicubic")


@given(data=st.data(), mode=st.sampled_from(["nearest", "bilinear"]), size=st.tuples(st.integers(1, 6),
                                                                                        st.integers(1, 6)))
def test_interpolate_gradcheck(data, mode, size):
    x = leaf(data.draw(arrays((1, 2, 3, 4))))
    gradcheck(lambda t: F.interpolate(t, size=size, mode=mode), [x], mode="direction")
