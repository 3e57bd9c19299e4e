"""Gradients of every op in minidl.functional and every layer in minidl.nn.

Each op is checked against central differences (``gradcheck``, float64) over a
grid of shapes, strides, paddings and dilations; output shapes are compared with
PyTorch's formulas (written out below).  Then the identities that make
transposed convolution what it is:

* adjoint:   <conv2d(x), y> = <x, conv_transpose2d(y)>   (same weight)
* gradient:  conv_transpose2d(y) = d<conv2d(x), y>/dx
* unpooling puts every max back at its switch.
"""

import numpy as np
import pytest

import minidl.functional as F
from minidl import nn
from minidl.gradcheck import gradcheck
from minidl.tensor import tensor


def rand(*shape, seed=0, requires_grad=True):
    """float64 standard-normal tensor."""
    data = np.random.default_rng(seed).standard_normal(shape)
    return tensor(data, requires_grad=requires_grad)


def away_from_zero(t, margin=0.1):
    """Push every entry at least ``margin`` away from 0 (ReLU-like kinks have no
    derivative there), keeping the entries distinct (max pooling needs no ties)."""
    t.data += np.where(t.data >= 0, margin, -margin)
    return t


# ---- PyTorch's output-size formulas (torch.nn.Conv2d / ConvTranspose2d / MaxPool2d docs)
def conv_out(size, k, s=1, p=0, d=1):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv_transpose_out(size, k, s=1, p=0, op=0, d=1):
    return (size - 1) * s - 2 * p + d * (k - 1) + op + 1


def pool_out(size, k, s, p=0):
    return (size + 2 * p - k) // s + 1


def unpool_out(size, k, s, p=0):
    return (size - 1) * s - 2 * p + k


# ------------------------------------------------------------ convolution
# (N, C_in, H, W), (C_out, kh, kw), stride, padding, dilation
CONV_CASES = [
    ((1, 1, 4, 4), (1, 3, 3), 1, 0, 1),
    ((2, 2, 5, 5), (3, 3, 3), 1, 1, 1),  # batch > 1, "same" padding
    ((1, 2, 7, 6), (2, 3, 2), 2, 0, 1),  # odd sizes, non-square kernel, stride 2
    ((2, 1, 6, 7), (2, 2, 3), (2, 1), (1, 0), 1),  # per-axis stride and padding
    ((1, 2, 7, 7), (1, 3, 3), 1, 2, 2),  # dilation
    ((1, 1, 8, 5), (2, 2, 2), 3, 1, (2, 1)),  # stride 3, per-axis dilation
    ((1, 3, 3, 3), (2, 1, 1), 1, 0, 1),  # 1x1 kernel
    ((1, 1, 3, 3), (1, 5, 5), 1, 1, 1),  # kernel bigger than the unpadded input
]


def _pairs(v):
    return (v, v) if isinstance(v, int) else v


def _pool_pairs(kernel, stride, padding):
    """kernel, stride (the kernel when None, as in PyTorch) and padding as pairs."""
    k = _pairs(kernel)
    return k, k if stride is None else _pairs(stride), _pairs(padding)


@pytest.mark.parametrize("x_shape, w_spec, stride, padding, dilation", CONV_CASES)
def test_conv2d(x_shape, w_spec, stride, padding, dilation):
    c_out, kh, kw = w_spec
    x = rand(*x_shape, seed=1)
    w = rand(c_out, x_shape[1], kh, kw, seed=2)
    b = rand(c_out, seed=3)
    y = F.conv2d(x, w, b, stride, padding, dilation)
    (sh, sw), (ph, pw), (dh, dw) = _pairs(stride), _pairs(padding), _pairs(dilation)
    assert y.shape == (
        x_shape[0], c_out, conv_out(x_shape[2], kh, sh, ph, dh), conv_out(x_shape[3], kw, sw, pw, dw)
    )
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation), [x, w, b])


def test_conv2d_matches_a_direct_loop():
    x, w = rand(2, 2, 5, 6, seed=1), rand(3, 2, 2, 3, seed=2)
    stride, padding, dilation = (2, 1), (1, 2), (2, 1)
    y = F.conv2d(x, w, None, stride, padding, dilation).data
    xp = np.pad(x.data, ((0, 0), (0, 0), (1, 1), (2, 2)))
    for n, o, i, j in np.ndindex(*y.shape):
        window = xp[n, :, i * 2 : i * 2 + 2 * 1 + 1 : 2, j : j + 3]
        assert y[n, o, i, j] == pytest.approx((window * w.data[o]).sum())


# (N, C_in, H, W), (C_out, kh, kw), stride, padding, output_padding, dilation
CONV_T_CASES = [
    ((1, 1, 2, 2), (1, 3, 3), 1, 0, 0, 1),
    ((2, 2, 3, 3), (3, 2, 2), 2, 0, 0, 1),  # the classic 2x upsampling
    ((1, 2, 3, 4), (2, 3, 3), 2, 1, 1, 1),  # output_padding picks the odd size
    ((1, 1, 4, 3), (2, 3, 2), (3, 2), (1, 0), (2, 1), 1),  # per-axis everything
    ((2, 1, 3, 3), (1, 3, 3), 1, 1, 0, 2),  # dilation
    ((1, 2, 2, 3), (1, 2, 3), 2, 0, 1, (1, 2)),  # output_padding < dilation
]


@pytest.mark.parametrize("x_shape, w_spec, stride, padding, output_padding, dilation", CONV_T_CASES)
def test_conv_transpose2d(x_shape, w_spec, stride, padding, output_padding, dilation):
    c_out, kh, kw = w_spec
    x = rand(*x_shape, seed=1)
    w = rand(x_shape[1], c_out, kh, kw, seed=2)  # (C_in, C_out, kh, kw)
    b = rand(c_out, seed=3)
    args = (stride, padding, output_padding, dilation)
    y = F.conv_transpose2d(x, w, b, *args)
    s, p, op, d = (_pairs(a) for a in args)
    assert y.shape == (
        x_shape[0], c_out,
        conv_transpose_out(x_shape[2], kh, s[0], p[0], op[0], d[0]),
        conv_transpose_out(x_shape[3], kw, s[1], p[1], op[1], d[1]),
    )
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, *args), [x, w, b])


# (N, C_in, H, W), (C_out, kh, kw), stride, padding, dilation
ADJOINT_CASES = CONV_CASES + [
    ((1, 2, 9, 8), (3, 3, 3), 2, 1, 1),
    ((2, 1, 10, 11), (2, 3, 2), 3, (2, 1), (1, 2)),
    ((1, 1, 7, 9), (1, 2, 2), (2, 3), 0, 1),
]


@pytest.mark.parametrize("x_shape, w_spec, stride, padding, dilation", ADJOINT_CASES)
def test_conv_transpose2d_is_the_adjoint_and_the_gradient_of_conv2d(
    x_shape, w_spec, stride, padding, dilation
):
    c_out, kh, kw = w_spec
    x = rand(*x_shape, seed=4)
    w = rand(c_out, x_shape[1], kh, kw, seed=5, requires_grad=False)
    y_conv = F.conv2d(x, w, None, stride, padding, dilation)
    y = rand(*y_conv.shape, seed=6, requires_grad=False)
    # Several input sizes give the same conv output size; output_padding picks x's.
    s, p, d = _pairs(stride), _pairs(padding), _pairs(dilation)
    output_padding = tuple(
        x_shape[2 + i] - conv_transpose_out(y.shape[2 + i], w.shape[2 + i], s[i], p[i], 0, d[i])
        for i in range(2)
    )
    x_t = F.conv_transpose2d(y, w, None, stride, padding, output_padding, dilation)
    assert x_t.shape == x.shape
    # <conv2d(x), y> == <x, conv_transpose2d(y)>
    lhs = float((y_conv.data * y.data).sum())
    rhs = float((x.data * x_t.data).sum())
    assert lhs == pytest.approx(rhs, rel=1e-10)
    # ... which means conv_transpose2d(y) is the gradient of <conv2d(x), y> w.r.t. x.
    y_conv.backward(y)
    np.testing.assert_allclose(x.grad, x_t.data, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------ pooling
# (N, C, H, W), kernel, stride, padding
POOL_CASES = [
    ((1, 1, 4, 4), 2, None, 0),
    ((2, 3, 5, 5), 2, None, 0),  # odd size: the last row/column is dropped
    ((1, 2, 5, 7), 3, 2, 1),  # overlapping windows, padding
    ((2, 1, 6, 5), (2, 3), (1, 2), (1, 1)),  # non-square
    ((1, 1, 3, 3), 3, 1, 1),
]


@pytest.mark.parametrize("x_shape, kernel, stride, padding", POOL_CASES)
def test_max_pool2d(x_shape, kernel, stride, padding):
    x = rand(*x_shape, seed=7)
    y, indices = F.max_pool2d(x, kernel, stride, padding, return_indices=True)
    k, s, p = _pool_pairs(kernel, stride, padding)
    expected = x_shape[:2] + tuple(pool_out(x_shape[2 + i], k[i], s[i], p[i]) for i in range(2))
    assert y.shape == indices.shape == expected
    assert indices.dtype == np.int64
    # Each output is the input value at its switch.
    planes = x.data.reshape(x_shape[0], x_shape[1], -1)
    np.testing.assert_array_equal(
        y.data, np.take_along_axis(planes, indices.data.reshape(*x_shape[:2], -1), 2).reshape(y.shape)
    )
    assert gradcheck(lambda x: F.max_pool2d(x, kernel, stride, padding), [x])


@pytest.mark.parametrize("x_shape, kernel, stride, padding", POOL_CASES)
def test_avg_pool2d(x_shape, kernel, stride, padding):
    x = rand(*x_shape, seed=8)
    y = F.avg_pool2d(x, kernel, stride, padding)
    k, s, p = _pool_pairs(kernel, stride, padding)
    assert y.shape == x_shape[:2] + tuple(pool_out(x_shape[2 + i], k[i], s[i], p[i]) for i in range(2))
    assert gradcheck(lambda x: F.avg_pool2d(x, kernel, stride, padding), [x])


@pytest.mark.parametrize("x_shape, kernel, stride, padding", POOL_CASES)
def test_max_unpool2d(x_shape, kernel, stride, padding):
    x = rand(*x_shape, seed=9)
    y, indices = F.max_pool2d(x, kernel, stride, padding, return_indices=True)
    k, s, p = _pool_pairs(kernel, stride, padding)
    default_hw = tuple(unpool_out(y.shape[2 + i], k[i], s[i], p[i]) for i in range(2))
    if default_hw == x_shape[2:]:
        assert F.max_unpool2d(y, indices, kernel, stride, padding).shape[2:] == default_hw
    else:  # the default size is too small for these switches: as PyTorch, an error
        with pytest.raises(ValueError, match=r"max_unpool2d: indices must lie in \[0, "):
            F.max_unpool2d(y, indices, kernel, stride, padding)
    flat = indices.data.reshape(x_shape[0] * x_shape[1], -1)
    if any(len(np.unique(row)) < len(row) for row in flat):
        # Overlapping windows can share a switch; unpooling then writes one value
        # over another there (as in PyTorch) and the written-over one has no
        # effect, so only check gradients when every switch is distinct.
        return
    values = rand(*y.shape, seed=10)
    assert gradcheck(
        lambda v: F.max_unpool2d(v, indices, kernel, stride, padding, output_size=x_shape), [values]
    )


@pytest.mark.parametrize("x_shape", [(1, 1, 4, 4), (2, 3, 6, 4), (1, 2, 5, 7)])
def test_unpool_of_pool_puts_each_max_back_at_its_switch(x_shape):
    x = rand(*x_shape, seed=11, requires_grad=False)
    y, indices = F.max_pool2d(x, 2, return_indices=True)
    u = F.max_unpool2d(y, indices, 2, output_size=x.shape)
    assert u.shape == x.shape
    # Expected by hand: in each 2x2 window keep only the largest value.
    expected = np.zeros(x_shape)
    n, c, h, w = x_shape
    for b, ch, i, j in np.ndindex(n, c, h // 2, w // 2):
        window = x.data[b, ch, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
        di, dj = np.unravel_index(window.argmax(), window.shape)
        expected[b, ch, 2 * i + di, 2 * j + dj] = window.max()
    np.testing.assert_array_equal(u.data, expected)
    assert np.count_nonzero(u.data) == y.data.size  # zeros everywhere else


# ------------------------------------------------------------ Gram matrix
@pytest.mark.parametrize("shape", [(1, 1, 2, 2), (2, 3, 4, 5), (1, 4, 3, 1)])
def test_gram_matrix(shape):
    x = rand(*shape, seed=12)
    g = F.gram_matrix(x)
    n, c, h, w = shape
    f = x.data.reshape(n, c, h * w)
    assert g.shape == (n, c, c)
    np.testing.assert_allclose(g.data, f @ f.transpose(0, 2, 1) / (c * h * w))
    assert gradcheck(F.gram_matrix, [x])


# ------------------------------------------------------------ activations, resampling
@pytest.mark.parametrize(
    "fn",
    [F.relu, F.leaky_relu, lambda x: F.leaky_relu(x, 0.2), F.sigmoid, F.tanh],
    ids=["relu", "leaky_relu", "leaky_relu_0.2", "sigmoid", "tanh"],
)
def test_activations(fn):
    x = away_from_zero(rand(2, 3, 4, seed=13) * 3.0)  # wide range, but no kinks
    x = tensor(x.data, requires_grad=True)
    assert gradcheck(fn, [x])


def test_activation_values():
    x = tensor(np.array([-2.0, 0.5, -800.0, 800.0]))
    exp_minus_x = np.array([np.exp(2.0), np.exp(-0.5), np.inf, 0.0])
    np.testing.assert_allclose(F.relu(x).data, [0, 0.5, 0, 800])
    np.testing.assert_allclose(F.leaky_relu(x, 0.1).data, [-0.2, 0.5, -80, 800])
    np.testing.assert_allclose(F.sigmoid(x).data, 1 / (1 + exp_minus_x))  # no overflow
    np.testing.assert_allclose(F.tanh(x).data, np.tanh(x.data))


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_upsample_nearest(scale):
    x = rand(2, 2, 3, 2, seed=14)
    y = F.upsample_nearest(x, scale)
    np.testing.assert_array_equal(y.data, x.data.repeat(scale, axis=2).repeat(scale, axis=3))
    assert gradcheck(lambda x: F.upsample_nearest(x, scale), [x])


@pytest.mark.parametrize("padding", [1, 2, (1, 0, 2, 1), (0, 3, 0, 0)])
def test_reflection_pad2d(padding):
    x = rand(2, 1, 4, 5, seed=15)
    y = F.reflection_pad2d(x, padding)
    left, right, top, bottom = (padding,) * 4 if isinstance(padding, int) else padding
    np.testing.assert_array_equal(
        y.data, np.pad(x.data, ((0, 0), (0, 0), (top, bottom), (left, right)), mode="reflect")
    )
    assert gradcheck(lambda x: F.reflection_pad2d(x, padding), [x])


# ------------------------------------------------------------ normalisation
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm(affine):
    x = rand(2, 3, 3, 4, seed=16)
    weight, bias = (rand(3, seed=17), rand(3, seed=18)) if affine else (None, None)
    y = F.instance_norm(x, weight=weight, bias=bias)
    if not affine:
        np.testing.assert_allclose(y.data.mean(axis=(2, 3)), 0, atol=1e-12)
        np.testing.assert_allclose(y.data.var(axis=(2, 3)), 1, rtol=1e-3)
    inputs = [x, weight, bias] if affine else [x]
    assert gradcheck(lambda x, *wb: F.instance_norm(x, weight=wb[0], bias=wb[1])
                     if wb else F.instance_norm(x), inputs)


def test_batch_norm_training():
    x, weight, bias = rand(3, 2, 2, 3, seed=19), rand(2, seed=20), rand(2, seed=21)
    y = F.batch_norm(x, training=True)
    np.testing.assert_allclose(y.data.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                     [x, weight, bias])


def test_batch_norm_eval_uses_running_statistics():
    x, weight, bias = rand(2, 2, 3, 3, seed=22), rand(2, seed=23), rand(2, seed=24)
    mean = tensor(np.array([0.5, -1.0]))
    var = tensor(np.array([2.0, 0.25]))
    y = F.batch_norm(x, mean, var, weight, bias, training=False)
    expected = (x.data - mean.data[:, None, None]) / np.sqrt(var.data[:, None, None] + 1e-5)
    expected = expected * weight.data[:, None, None] + bias.data[:, None, None]
    np.testing.assert_allclose(y.data, expected)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=False),
                     [x, weight, bias])


@pytest.mark.parametrize("style_batch", [1, 2])
def test_adain(style_batch):
    content, style = rand(2, 3, 3, 3, seed=25), rand(style_batch, 3, 4, 2, seed=26)
    y = F.adain(content, style)
    np.testing.assert_allclose(
        y.data.mean(axis=(2, 3)), np.broadcast_to(style.data.mean(axis=(2, 3)), (2, 3)), atol=1e-12
    )
    assert gradcheck(F.adain, [content, style])


# ------------------------------------------------------------ losses
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_loss(reduction):
    a, b = rand(2, 3, seed=27), rand(2, 3, seed=28)
    loss = F.mse_loss(a, b, reduction)
    expected = ((a.data - b.data) ** 2).mean() if reduction == "mean" else ((a.data - b.data) ** 2).sum()
    assert loss.item() == pytest.approx(expected)
    assert gradcheck(lambda a, b: F.mse_loss(a, b, reduction), [a, b])


def test_tv_loss():
    x = rand(2, 2, 3, 4, seed=29)
    d_rows, d_cols = np.diff(x.data, axis=2), np.diff(x.data, axis=3)
    assert F.tv_loss(x).item() == pytest.approx((d_rows**2).mean() + (d_cols**2).mean())
    assert gradcheck(F.tv_loss, [x])


def test_ssim():
    x = tensor(np.random.default_rng(30).uniform(size=(2, 2, 6, 5)), requires_grad=True)
    y = tensor(np.random.default_rng(31).uniform(size=(2, 2, 6, 5)), requires_grad=True)
    assert F.ssim(x, x, window_size=3).item() == pytest.approx(1.0)
    assert -1 <= F.ssim(x, y, window_size=3).item() < 1
    assert gradcheck(lambda x, y: F.ssim(x, y, window_size=3), [x, y])


def test_ssim_default_window():
    x = tensor(np.random.default_rng(32).uniform(size=(1, 1, 11, 12)), requires_grad=True)
    y = tensor(np.random.default_rng(33).uniform(size=(1, 1, 11, 12)))
    assert gradcheck(lambda x: 1 - F.ssim(x, y), [x])


# ------------------------------------------------------------ nn layers
LAYERS = [
    ("Conv2d", lambda: nn.Conv2d(2, 3, (2, 3), stride=2, padding=1, dtype=np.float64, seed=0),
     (2, 2, 5, 6)),
    ("Conv2d-dilated", lambda: nn.Conv2d(2, 1, 3, padding=2, dilation=2, bias=False,
                                         dtype=np.float64, seed=0), (1, 2, 4, 5)),
    ("ConvTranspose2d", lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1,
                                                   dtype=np.float64, seed=0), (2, 2, 3, 2)),
    ("MaxPool2d", lambda: nn.MaxPool2d(2), (2, 2, 4, 5)),
    ("AvgPool2d", lambda: nn.AvgPool2d(3, stride=2, padding=1), (1, 2, 5, 5)),
    ("ReLU", lambda: nn.ReLU(), (2, 3, 2, 2)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.2), (2, 3, 2, 2)),
    ("Upsample", lambda: nn.Upsample(2), (1, 2, 2, 3)),
    ("ReflectionPad2d", lambda: nn.ReflectionPad2d(1), (1, 2, 3, 3)),
    ("BatchNorm2d-train", lambda: nn.BatchNorm2d(2, dtype=np.float64), (3, 2, 2, 2)),
    ("BatchNorm2d-eval", lambda: nn.BatchNorm2d(2, dtype=np.float64).eval(), (3, 2, 2, 2)),
    ("InstanceNorm2d", lambda: nn.InstanceNorm2d(2, affine=True, dtype=np.float64), (2, 2, 3, 3)),
    ("Sequential", lambda: nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(1, 2, 3, dtype=np.float64, seed=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Upsample(2), nn.ConvTranspose2d(2, 1, 2, dtype=np.float64, seed=2),
    ), (1, 1, 4, 4)),
]


@pytest.mark.parametrize("make, x_shape", [c[1:] for c in LAYERS], ids=[c[0] for c in LAYERS])
def test_layer_gradients(make, x_shape):
    layer = make()
    x = away_from_zero(rand(*x_shape, seed=34))
    x = tensor(x.data, requires_grad=True)
    params = layer.parameters()
    for p in params:  # non-trivial affine parameters for the norms
        p.data[...] += np.random.default_rng(35).uniform(-0.5, 0.5, p.shape)
    assert gradcheck(lambda x, *ps: layer(x), [x, *params])
