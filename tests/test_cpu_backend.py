"""CpuBackend against naive, obviously-correct loop references (float64, tiny shapes)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from minidl.backends import cpu
from minidl.backends.cpu import CpuBackend

B = CpuBackend()


def out_size(size, k, s, p, d=1):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


# --------------------------------------------------------------------- references


def conv_taps(n, c, o, input_hw, output_hw, kernel_hw, stride, padding, dilation):
    """Every (image, out channel, output pixel, in channel, kernel tap) whose tap reads a
    real input pixel (r, q), not padding: the 7 loops of a convolution, written once."""
    (h, wd), (ho, wo), (kh, kw) = input_hw, output_hw, kernel_hw
    for b, f, oh, ow, ch, i, j in itertools.product(
        range(n), range(o), range(ho), range(wo), range(c), range(kh), range(kw)
    ):
        r = oh * stride[0] - padding[0] + i * dilation[0]
        q = ow * stride[1] - padding[1] + j * dilation[1]
        if 0 <= r < h and 0 <= q < wd:
            yield b, f, oh, ow, ch, i, j, r, q


def ref_conv2d(x, w, stride, padding, dilation):
    """The 7-loop convolution, reading zeros outside the image."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho = out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = out_size(wd, kw, stride[1], padding[1], dilation[1])
    y = np.zeros((n, o, ho, wo))
    for b, f, oh, ow, ch, i, j, r, q in conv_taps(
        n, c, o, (h, wd), (ho, wo), (kh, kw), stride, padding, dilation
    ):
        y[b, f, oh, ow] += x[b, ch, r, q] * w[f, ch, i, j]
    return y


def ref_conv2d_grad_input(gy, w, input_hw, stride, padding, dilation):
    """Each gy[b, f, oh, ow] flows back to the input pixels its window read."""
    n, o, ho, wo = gy.shape
    _, c, kh, kw = w.shape
    gx = np.zeros((n, c, *input_hw))
    for b, f, oh, ow, ch, i, j, r, q in conv_taps(
        n, c, o, input_hw, (ho, wo), (kh, kw), stride, padding, dilation
    ):
        gx[b, ch, r, q] += gy[b, f, oh, ow] * w[f, ch, i, j]
    return gx


def ref_conv2d_grad_weight(x, gy, kernel_hw, stride, padding, dilation):
    n, c, h, wd = x.shape
    _, o, ho, wo = gy.shape
    gw = np.zeros((o, c, *kernel_hw))
    for b, f, oh, ow, ch, i, j, r, q in conv_taps(
        n, c, o, (h, wd), (ho, wo), kernel_hw, stride, padding, dilation
    ):
        gw[f, ch, i, j] += gy[b, f, oh, ow] * x[b, ch, r, q]
    return gw


def windows(h, wd, kernel, stride, padding):
    """Yield (oh, ow, [(r, q), ...]) with the in-image pixels of each window, row-major."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    for oh in range(out_size(h, kh, sh, ph)):
        for ow in range(out_size(wd, kw, sw, pw)):
            pixels = [(oh * sh - ph + i, ow * sw - pw + j) for i in range(kh) for j in range(kw)]
            yield oh, ow, [(r, q) for r, q in pixels if 0 <= r < h and 0 <= q < wd]


def ref_max_pool2d(x, kernel, stride, padding):
    n, c, h, wd = x.shape
    ho = out_size(h, kernel[0], stride[0], padding[0])
    wo = out_size(wd, kernel[1], stride[1], padding[1])
    y = np.zeros((n, c, ho, wo))
    idx = np.zeros((n, c, ho, wo), dtype=np.int64)
    for b, ch in itertools.product(range(n), range(c)):
        for oh, ow, pixels in windows(h, wd, kernel, stride, padding):
            best, arg = -np.inf, -1
            for r, q in pixels:
                if x[b, ch, r, q] > best:  # strict: the first maximum wins
                    best, arg = x[b, ch, r, q], r * wd + q
            y[b, ch, oh, ow], idx[b, ch, oh, ow] = best, arg
    return y, idx


def ref_avg_pool2d(x, kernel, stride, padding):
    n, c, h, wd = x.shape
    ho = out_size(h, kernel[0], stride[0], padding[0])
    wo = out_size(wd, kernel[1], stride[1], padding[1])
    y = np.zeros((n, c, ho, wo))
    for b, ch in itertools.product(range(n), range(c)):
        for oh, ow, pixels in windows(h, wd, kernel, stride, padding):
            y[b, ch, oh, ow] = sum(x[b, ch, r, q] for r, q in pixels) / (kernel[0] * kernel[1])
    return y


def ref_avg_pool2d_grad(gy, input_hw, kernel, stride, padding):
    n, c = gy.shape[:2]
    gx = np.zeros((n, c, *input_hw))
    for b, ch in itertools.product(range(n), range(c)):
        for oh, ow, pixels in windows(*input_hw, kernel, stride, padding):
            for r, q in pixels:
                gx[b, ch, r, q] += gy[b, ch, oh, ow] / (kernel[0] * kernel[1])
    return gx


# --------------------------------------------------------------------- convolution

# (N, C_in, C_out, H, W, kernel, stride, padding, dilation)
CONV_CASES = [
    (1, 1, 1, 5, 5, (3, 3), (1, 1), (0, 0), (1, 1)),
    (2, 3, 4, 7, 6, (3, 3), (1, 1), (1, 1), (1, 1)),
    (2, 2, 3, 7, 7, (3, 3), (2, 2), (1, 1), (1, 1)),
    (1, 3, 2, 11, 13, (2, 3), (2, 1), (1, 0), (1, 1)),
    (3, 2, 2, 9, 7, (3, 2), (1, 2), (0, 1), (2, 1)),
    (1, 2, 3, 13, 11, (3, 3), (3, 2), (2, 1), (2, 3)),
    (2, 1, 2, 5, 7, (1, 1), (1, 1), (0, 0), (1, 1)),
    (1, 2, 2, 8, 8, (5, 5), (1, 1), (2, 2), (1, 1)),
    (1, 3, 1, 6, 9, (4, 1), (2, 3), (0, 0), (1, 1)),
    (2, 2, 2, 4, 4, (4, 4), (1, 1), (0, 0), (1, 1)),  # 1x1 output
    (1, 4, 2, 7, 9, (2, 3), (1, 1), (1, 2), (1, 1)),  # grad_input as a rotated conv2d
]


@pytest.fixture(params=[None, 1, 200], ids=["one-chunk", "row-per-chunk", "few-rows"])
def workspace(request, monkeypatch):
    """Run conv tests with the default workspace and with tiny ones (many row chunks)."""
    if request.param is not None:
        monkeypatch.setattr(cpu, "WORKSPACE_BYTES", request.param)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_and_grads_match_loops(case, workspace):
    n, c, o, h, wd, kernel, stride, padding, dilation = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, wd))
    w = rng.standard_normal((o, c, *kernel))
    y = B.conv2d(x, w, stride, padding, dilation)
    np.testing.assert_allclose(y, ref_conv2d(x, w, stride, padding, dilation), atol=1e-12)

    gy = rng.standard_normal(y.shape)
    gx = B.conv2d_grad_input(gy, w, (h, wd), stride, padding, dilation)
    ref_gx = ref_conv2d_grad_input(gy, w, (h, wd), stride, padding, dilation)
    np.testing.assert_allclose(gx, ref_gx, atol=1e-12)

    gw = B.conv2d_grad_weight(x, gy, kernel, stride, padding, dilation)
    ref_gw = ref_conv2d_grad_weight(x, gy, kernel, stride, padding, dilation)
    np.testing.assert_allclose(gw, ref_gw, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_adjoint_identities(case):
    """<conv2d(x, w), y> = <x, grad_input(y, w)> = <w, grad_weight(x, y)>."""
    n, c, o, h, wd, kernel, stride, padding, dilation = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, h, wd))
    w = rng.standard_normal((o, c, *kernel))
    y = B.conv2d(x, w, stride, padding, dilation)
    g = rng.standard_normal(y.shape)
    lhs = np.vdot(y, g)
    gx = B.conv2d_grad_input(g, w, (h, wd), stride, padding, dilation)
    gw = B.conv2d_grad_weight(x, g, kernel, stride, padding, dilation)
    assert np.isclose(lhs, np.vdot(x, gx), rtol=1e-10)
    assert np.isclose(lhs, np.vdot(w, gw), rtol=1e-10)


def test_conv2d_grad_input_output_padding():
    """Inputs 7 and 8 both give 4 outputs (k3 s2 p1); input_hw picks one, the extra row/col
    is a real input that the last window reaches or not."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 2, 3, 3))
    gy = rng.standard_normal((2, 3, 4, 4))
    args = ((2, 2), (1, 1), (1, 1))
    for input_hw in [(7, 7), (8, 8), (7, 8)]:
        gx = B.conv2d_grad_input(gy, w, input_hw, *args)
        assert gx.shape == (2, 2, *input_hw)
        np.testing.assert_allclose(gx, ref_conv2d_grad_input(gy, w, input_hw, *args), atol=1e-12)
    # k3 s3 p0: input 9 gives 3 outputs, input 11 too; rows 9, 10 are read by no window
    w = rng.standard_normal((1, 1, 3, 3))
    gy = rng.standard_normal((1, 1, 3, 3))
    gx = B.conv2d_grad_input(gy, w, (11, 11), (3, 3), (0, 0), (1, 1))
    assert np.all(gx[..., 9:, :] == 0) and np.all(gx[..., :, 9:] == 0)
    assert np.all(gx[..., :9, :9] != 0)


def conv_out_hw(input_hw, kernel_hw, stride, padding, dilation):
    return tuple(out_size(*axis) for axis in zip(input_hw, kernel_hw, stride, padding, dilation))


def ref_im2col(x, kernel_hw, stride, padding, dilation):
    """cols[b, (c, i, j), (oh, ow)] = the input pixel tap (i, j) of window (oh, ow) reads."""
    n, c, h, wd = x.shape
    ho, wo = conv_out_hw((h, wd), kernel_hw, stride, padding, dilation)
    cols = np.zeros((n, c, *kernel_hw, ho, wo))
    for b, _, oh, ow, ch, i, j, r, q in conv_taps(
        n, c, 1, (h, wd), (ho, wo), kernel_hw, stride, padding, dilation
    ):
        cols[b, ch, i, j, oh, ow] = x[b, ch, r, q]
    return cols.reshape(n, c * kernel_hw[0] * kernel_hw[1], ho * wo)


@pytest.mark.parametrize("case", CONV_CASES)
def test_im2col_loop_and_strided_view_agree(case):
    """The loop over kernel offsets (the pair of col2im) and the strided view that runs."""
    _, c, _, h, wd, kernel, stride, padding, dilation = case
    padded = np.random.default_rng(1).standard_normal((c, h + 2 * padding[0], wd + 2 * padding[1]))
    out_hw = conv_out_hw((h, wd), kernel, stride, padding, dilation)
    by_loop = cpu.im2col_loop(padded, kernel, out_hw, stride, dilation)
    np.testing.assert_array_equal(cpu.im2col_strided(padded, kernel, out_hw, stride, dilation), by_loop)
    assert cpu.im2col in (cpu.im2col_loop, cpu.im2col_strided)


@pytest.mark.parametrize("case", CONV_CASES)
def test_im2col_and_col2im_match_loops(case, workspace):
    """Backend im2col (F.unfold) against the loops; col2im (F.fold) is its adjoint."""
    n, c, _, h, wd, kernel, stride, padding, dilation = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, c, h, wd))
    cols = B.im2col(x, kernel, stride, padding, dilation)
    np.testing.assert_array_equal(cols, ref_im2col(x, kernel, stride, padding, dilation))
    g = rng.standard_normal(cols.shape)
    back = B.col2im(g, (h, wd), kernel, stride, padding, dilation)
    assert back.shape == x.shape
    # <im2col(x), g> = <x, col2im(g)> for every x and g: col2im is the transpose
    np.testing.assert_allclose(np.vdot(cols, g), np.vdot(x, back), rtol=1e-12)
    ones = B.col2im(np.ones_like(g), (h, wd), kernel, stride, padding, dilation)
    out_hw = conv_out_hw((h, wd), kernel, stride, padding, dilation)
    counts = np.zeros((h, wd))  # how many windows read each pixel
    for *_, r, q in conv_taps(1, 1, 1, (h, wd), out_hw, kernel, stride, padding, dilation):
        counts[r, q] += 1
    np.testing.assert_array_equal(ones, np.broadcast_to(counts, x.shape))


def test_conv2d_grad_input_rejects_inconsistent_input_hw():
    w = np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError, match="conv2d_grad_input"):
        B.conv2d_grad_input(np.ones((1, 1, 4, 4)), w, (9, 9), (2, 2), (1, 1), (1, 1))


def test_conv2d_known_values():
    """A 3x3 all-ones kernel with padding 1 counts the neighbours inside the image."""
    y = B.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), (1, 1), (1, 1), (1, 1))
    np.testing.assert_array_equal(y[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_conv2d_accepts_non_contiguous_input():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 5)).transpose(0, 1, 3, 2)  # (2, 3, 5, 6), not contiguous
    w = rng.standard_normal((2, 3, 3, 3))
    args = ((1, 1), (0, 0), (1, 1))
    np.testing.assert_allclose(B.conv2d(x, w, *args), ref_conv2d(x, w, *args), atol=1e-12)


# --------------------------------------------------------------------- max pooling

# (N, C, H, W, kernel, stride, padding)
POOL_CASES = [
    (1, 1, 4, 4, (2, 2), (2, 2), (0, 0)),
    (2, 3, 7, 5, (2, 2), (2, 2), (0, 0)),
    (2, 2, 7, 7, (3, 3), (2, 2), (1, 1)),  # overlapping + padding
    (1, 2, 6, 9, (3, 2), (1, 2), (1, 1)),
    (2, 1, 5, 5, (3, 3), (1, 1), (0, 0)),  # heavy overlap
    (1, 3, 11, 13, (4, 3), (3, 2), (2, 1)),
    (1, 1, 3, 3, (1, 1), (1, 1), (0, 0)),
    (2, 2, 7, 9, (2, 3), (2, 3), (1, 1)),  # windows apart, with padding
    (1, 2, 9, 8, (2, 2), (3, 3), (0, 0)),  # gaps between the windows
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d_and_grad_match_loops(case):
    n, c, h, wd, kernel, stride, padding = case
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, c, h, wd))
    y, idx = B.max_pool2d(x, kernel, stride, padding)
    ref_y, ref_idx = ref_max_pool2d(x, kernel, stride, padding)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(idx, ref_idx)
    assert idx.dtype == np.int32  # kept until backward: half of int64's memory (F gives int64)

    gy = rng.standard_normal(y.shape)
    ref_gx = np.zeros_like(x)
    for b, ch, oh, ow in np.ndindex(*y.shape):
        r, q = divmod(idx[b, ch, oh, ow], wd)
        ref_gx[b, ch, r, q] += gy[b, ch, oh, ow]  # overlapping windows add up
    np.testing.assert_allclose(B.max_pool2d_grad(gy, idx, (h, wd), kernel, stride, padding), ref_gx, atol=1e-12)


def test_max_pool2d_hand_computed_indices():
    x = np.array(
        [
            [1, 5, 2, 0],
            [3, 4, 9, 9],  # 9 twice in one window: the first (row-major) wins
            [7, 7, 0, 1],  # 7 twice: the first wins
            [6, 0, 8, 2],
        ],
        dtype=np.float64,
    ).reshape(1, 1, 4, 4)
    y, idx = B.max_pool2d(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(y[0, 0], [[5, 9], [7, 8]])
    np.testing.assert_array_equal(idx[0, 0], [[1, 6], [8, 14]])

    # 3x3 windows, stride 2, padding 1: window rows/cols are {-1, 0, 1} and {1, 2, 3};
    # padding acts as -inf and indices count in the unpadded 4x4 plane.
    # On -|x|-1 the maximum sits at the smallest |x|: the 0s at (0,3), (3,1) and (2,2);
    # window (1,1) holds both (2,2) and (3,1), and (2,2) comes first.
    y, idx = B.max_pool2d(-np.abs(x) - 1, (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(y[0, 0], [[-2, -1], [-1, -1]])
    np.testing.assert_array_equal(idx[0, 0], [[0, 3], [13, 10]])


def test_max_pool2d_padding_never_wins_over_negative_values():
    x = -np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3) * 100
    y, idx = B.max_pool2d(x, (2, 2), (2, 2), (1, 1))
    np.testing.assert_array_equal(y[0, 0], [[-100, -200], [-400, -500]])
    np.testing.assert_array_equal(idx[0, 0], [[0, 1], [3, 4]])


def test_max_unpool2d_and_grad():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 5))
    y, idx = B.max_pool2d(x, (2, 2), (2, 2), (0, 0))
    un = B.max_unpool2d(y, idx, (6, 5))
    ref = np.zeros_like(x)
    for b, ch, oh, ow in np.ndindex(*y.shape):
        r, q = divmod(idx[b, ch, oh, ow], 5)
        ref[b, ch, r, q] = y[b, ch, oh, ow]
    np.testing.assert_array_equal(un, ref)
    assert np.count_nonzero(un) == y.size  # 3x2 windows kept; row 5 of each plane is empty

    gy = rng.standard_normal(un.shape)
    g = B.max_unpool2d_grad(gy, idx)
    ref_g = np.zeros(y.shape)
    for b, ch, oh, ow in np.ndindex(*y.shape):
        r, q = divmod(idx[b, ch, oh, ow], 5)
        ref_g[b, ch, oh, ow] = gy[b, ch, r, q]
    np.testing.assert_array_equal(g, ref_g)
    # gather is the adjoint of write: <unpool(v), gy> = <v, unpool_grad(gy)>
    v = rng.standard_normal(y.shape)
    assert np.isclose(np.vdot(B.max_unpool2d(v, idx, (6, 5)), gy), np.vdot(v, g))


def test_max_unpool2d_larger_output_size():
    x = np.array([[[[3.0, 4.0]]]])
    idx = np.array([[[[0, 9]]]], dtype=np.int64)
    y = B.max_unpool2d(x, idx, (3, 4))
    expected = np.zeros((1, 1, 3, 4))
    expected[0, 0, 0, 0], expected[0, 0, 2, 1] = 3, 4
    np.testing.assert_array_equal(y, expected)


# --------------------------------------------------------------------- average pooling


@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool2d_and_grad_match_loops(case):
    n, c, h, wd, kernel, stride, padding = case
    rng = np.random.default_rng(6)
    x = rng.standard_normal((n, c, h, wd))
    y = B.avg_pool2d(x, kernel, stride, padding)
    np.testing.assert_allclose(y, ref_avg_pool2d(x, kernel, stride, padding), atol=1e-12)
    gy = rng.standard_normal(y.shape)
    gx = B.avg_pool2d_grad(gy, (h, wd), kernel, stride, padding)
    np.testing.assert_allclose(
        gx, ref_avg_pool2d_grad(gy, (h, wd), kernel, stride, padding), atol=1e-12
    )
    assert np.isclose(np.vdot(y, gy), np.vdot(x, gx))


def test_avg_pool2d_counts_padded_zeros():
    y = B.avg_pool2d(np.ones((1, 1, 2, 2)), (2, 2), (1, 1), (1, 1))
    # corner windows hold one real 1 and three padded zeros: 1/4
    np.testing.assert_array_equal(y[0, 0], [[0.25, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 0.25]])


# --------------------------------------------------------------------- Gram matrix


def test_gram_matches_einsum():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5, 7))
    expected = np.einsum("nchw,ndhw->ncd", x, x) / (3 * 5 * 7)
    np.testing.assert_allclose(B.gram(x), expected, atol=1e-14)


def test_gram_grad_matches_finite_differences():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 4, 3))
    g_gram = rng.standard_normal((2, 3, 3))  # not symmetric on purpose

    def loss(v):
        return np.sum(g_gram * B.gram(v))

    eps = 1e-6
    numeric = np.zeros_like(x)
    for pos in np.ndindex(*x.shape):
        bump = np.zeros_like(x)
        bump[pos] = eps
        numeric[pos] = (loss(x + bump) - loss(x - bump)) / (2 * eps)
    np.testing.assert_allclose(B.gram_grad(g_gram, x), numeric, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------- dtypes


def test_float32_in_float32_out():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    args = ((1, 1), (1, 1), (1, 1))
    y = B.conv2d(x, w, *args)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref_conv2d(x, w, *args), rtol=1e-4, atol=1e-4)
    assert B.conv2d_grad_input(y, w, (8, 8), *args).dtype == np.float32
    assert B.conv2d_grad_weight(x, y, (3, 3), *args).dtype == np.float32
    p, idx = B.max_pool2d(x, (2, 2), (2, 2), (0, 0))
    assert p.dtype == np.float32
    assert B.max_pool2d_grad(p, idx, (8, 8), (2, 2), (2, 2), (0, 0)).dtype == np.float32
    assert B.max_unpool2d(p, idx, (8, 8)).dtype == np.float32
    assert B.max_unpool2d_grad(x, idx).dtype == np.float32
    assert B.avg_pool2d(x, (2, 2), (2, 2), (1, 1)).dtype == np.float32
    assert B.avg_pool2d_grad(p, (8, 8), (2, 2), (2, 2), (0, 0)).dtype == np.float32
    assert B.gram(x).dtype == np.float32
    assert B.gram_grad(B.gram(x), x).dtype == np.float32


def test_backend_identity():
    assert B.name == "cpu" and B.xp is np


def test_max_pool_switch_is_the_first_nan_of_a_window():
    # Windows (2x2, stride 2) with no NaN, one NaN, two NaNs, and NaN beside +inf.
    x = np.array([[1, 5, np.nan, 2, np.nan, 7, 9, 1],
                  [3, 2, 8, 4, 6, np.nan, np.inf, np.nan]], np.float32).reshape(1, 1, 2, 8)
    y, idx = B.max_pool2d(x, (2, 2), (2, 2), (0, 0))
    assert y[0, 0, 0, 0] == 5 and np.isnan(y[0, 0, 0, 1:]).all()
    # flat indices h*8 + w of the switches: the max 5, then each window's first NaN
    np.testing.assert_array_equal(idx[0, 0, 0], [1, 2, 4, 15])
