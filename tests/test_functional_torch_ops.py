"""The torch.nn.functional ops students reach for: unfold/fold, pad, interpolate,
softmax/log_softmax, l1_loss.

Each is checked three ways: against a loop reference or numbers worked out by hand
(PyTorch's documented outputs), by a float64 gradient check, and by the errors a
wrong call gets.  Their device runs are in test_devices.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import minidl.functional as F
from minidl.gradcheck import gradcheck
from minidl.tensor import tensor


def t64(*shape, seed=0, requires_grad=True):
    return tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=requires_grad)


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


# ------------------------------------------------------------------ unfold / fold

# (N, C, H, W, kernel, dilation, padding, stride)
WINDOW_CASES = [
    (1, 1, 4, 4, (3, 3), (1, 1), (0, 0), (1, 1)),
    (2, 3, 5, 6, (2, 3), (1, 1), (1, 0), (2, 1)),
    (1, 2, 7, 5, (3, 2), (2, 1), (1, 2), (1, 2)),
]


def loop_unfold(x, kernel, dilation, padding, stride):
    """cols[b, (c, i, j), oh*W_out + ow] = x at tap (i, j) of window (oh, ow), 0 in the padding."""
    n, c, h, w = x.shape
    ho, wo = (out_size(x.shape[2 + a], kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1))
    cols = np.zeros((n, c, kernel[0], kernel[1], ho, wo))
    for b, ch, i, j, oh, ow in itertools.product(
        range(n), range(c), range(kernel[0]), range(kernel[1]), range(ho), range(wo)
    ):
        r = oh * stride[0] - padding[0] + i * dilation[0]
        q = ow * stride[1] - padding[1] + j * dilation[1]
        if 0 <= r < h and 0 <= q < w:
            cols[b, ch, i, j, oh, ow] = x[b, ch, r, q]
    return cols.reshape(n, c * kernel[0] * kernel[1], ho * wo)


@pytest.mark.parametrize("case", WINDOW_CASES)
def test_unfold_and_fold_match_loops_and_gradcheck(case):
    n, c, h, w, kernel, dilation, padding, stride = case
    options = {"dilation": dilation, "padding": padding, "stride": stride}
    x = t64(n, c, h, w)
    cols = F.unfold(x, kernel, **options)
    np.testing.assert_array_equal(cols.numpy(), loop_unfold(x.numpy(), kernel, **options))
    # fold is the transpose of unfold: <unfold x, g> == <x, fold g>
    g = t64(*cols.shape, seed=1)
    folded = F.fold(g, (h, w), kernel, **options)
    np.testing.assert_allclose(np.vdot(cols.numpy(), g.numpy()), np.vdot(x.numpy(), folded.numpy()))
    assert gradcheck(lambda x: F.unfold(x, kernel, **options), [x])
    assert gradcheck(lambda g: F.fold(g, (h, w), kernel, **options), [g])


def test_unfold_by_hand_and_conv2d_as_one_matrix_product():
    x = tensor(np.arange(9.0).reshape(1, 1, 3, 3))
    cols = F.unfold(x, 2)
    # the four 2x2 windows of [[0,1,2],[3,4,5],[6,7,8]], one per column
    np.testing.assert_array_equal(cols.numpy()[0], [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]])
    w = t64(4, 2, 3, 3, seed=2)
    x = t64(2, 2, 6, 5, seed=3)
    product = (w.reshape(4, -1) @ F.unfold(x, 3, padding=1)).reshape(2, 4, 6, 5)
    np.testing.assert_allclose(product.numpy(), F.conv2d(x, w, padding=1).numpy(), atol=1e-12)


def test_fold_of_unfold_counts_the_windows_over_each_pixel():
    ones = tensor(np.ones((1, 1, 3, 4)))
    counts = F.fold(F.unfold(ones, 2), (3, 4), 2)
    np.testing.assert_array_equal(counts.numpy()[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_unbatched_unfold_and_fold_as_in_pytorch():
    x = t64(2, 4, 4)
    cols = F.unfold(x, 3)
    assert cols.shape == (18, 4)
    np.testing.assert_array_equal(cols.numpy(), F.unfold(x.reshape(1, 2, 4, 4), 3).numpy()[0])
    assert F.fold(cols, (4, 4), 3).shape == (2, 4, 4)


def test_unfold_and_fold_errors():
    x = t64(1, 2, 4, 4)
    with pytest.raises(
        ValueError, match=r"unfold: input must be 4-D \(N, C, H, W\) or 3-D without N, got shape \(4, 4\)"
    ):
        F.unfold(t64(4, 4), 2)
    with pytest.raises(ValueError, match=r"unfold: kernel \(extent 5\) is larger than the padded"):
        F.unfold(x, 5)
    with pytest.raises(ValueError, match=r"unfold: stride must be positive, got 0 \(input \(1, 2, 4, 4\)\)"):
        F.unfold(x, 2, stride=0)
    with pytest.raises(ValueError, match=r"fold: input has 10 rows, not a multiple of kernel_size \(2, 2\)"):
        F.fold(t64(1, 10, 9), (4, 4), 2)
    with pytest.raises(ValueError, match=r"fold: input has 8 columns but output_size \(4, 4\) .* 3x3 = 9"):
        F.fold(t64(1, 8, 8), (4, 4), 2)
    with pytest.raises(TypeError, match=r"fold: output_size must be an int or a pair of ints"):
        F.fold(t64(1, 8, 9), (4, 4, 4), 2)


# ------------------------------------------------------------------ pad


def test_pad_by_hand():
    x = tensor(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(F.pad(x, (2, 1), value=9).numpy(), [[9, 9, 1, 2, 3, 9]])
    np.testing.assert_array_equal(F.pad(x, (2, 1), mode="reflect").numpy(), [[3, 2, 1, 2, 3, 2]])
    np.testing.assert_array_equal(F.pad(x, (2, 1), mode="replicate").numpy(), [[1, 1, 1, 2, 3, 3]])
    # (left, right, top, bottom): the last axis first, as in PyTorch
    assert F.pad(tensor(np.ones((1, 1, 2, 3))), (1, 2, 3, 0)).shape == (1, 1, 5, 6)


@pytest.mark.parametrize(
    "mode, numpy_mode", [("constant", "constant"), ("reflect", "reflect"), ("replicate", "edge")]
)
@pytest.mark.parametrize("widths", [(1, 2), (2, 1, 0, 2), (0, 0, 1, 1)])
def test_pad_matches_numpy_and_gradcheck(mode, numpy_mode, widths):
    x = t64(2, 3, 4, 5)
    sides = [(widths[i], widths[i + 1]) for i in range(0, len(widths), 2)]
    numpy_widths = [(0, 0)] * (4 - len(sides)) + sides[::-1]
    y = F.pad(x, widths, mode=mode)
    np.testing.assert_array_equal(y.numpy(), np.pad(x.numpy(), numpy_widths, mode=numpy_mode))
    assert gradcheck(lambda x: F.pad(x, widths, mode=mode), [x])


def test_constant_pad_of_any_axis_with_a_value():
    x = t64(2, 3, 4)
    y = F.pad(x, (0, 1, 1, 0, 2, 2), value=-1.5)
    np.testing.assert_array_equal(y.numpy(), np.pad(x.numpy(), [(2, 2), (1, 0), (0, 1)], constant_values=-1.5))
    assert gradcheck(lambda x: F.pad(x, (0, 1, 1, 0, 2, 2), value=-1.5), [x])


def test_reflection_pad2d_is_pad_reflect():
    x = t64(1, 2, 4, 5)
    np.testing.assert_array_equal(
        F.reflection_pad2d(x, (1, 2, 3, 0)).numpy(), F.pad(x, (1, 2, 3, 0), mode="reflect").numpy()
    )


def test_pad_errors():
    x = t64(1, 1, 3, 3)
    with pytest.raises(TypeError, match=r"pad: pad must be a tuple of \(before, after\) int pairs, got 1"):
        F.pad(x, 1)
    with pytest.raises(TypeError, match=r"pad: pad must be a tuple .* got \(1, 2, 3\)"):
        F.pad(x, (1, 2, 3))
    with pytest.raises(ValueError, match=r"pad: pad \(1, 1, 1, 1, 1, 1, 1, 1, 1, 1\) pads 5 axes but input"):
        F.pad(x, (1,) * 10)
    with pytest.raises(ValueError, match=r"pad: pad must be >= 0, got \(-1, 0\) \(input \(1, 1, 3, 3\)\)"):
        F.pad(x, (-1, 0))
    with pytest.raises(ValueError, match=r"pad: reflect padding \(3, 0\) must be smaller than the size 3 of axis 3"):
        F.pad(x, (3, 0), mode="reflect")
    with pytest.raises(ValueError, match=r"pad: mode must be 'constant', 'reflect' or 'replicate', got 'wrap'"):
        F.pad(x, (1, 1), mode="wrap")
    with pytest.raises(ValueError, match=r"pad: mode 'replicate' pads the last 1 or 2 axes"):
        F.pad(x, (1, 1, 1, 1, 1, 1), mode="replicate")


# ------------------------------------------------------------------ interpolate


def test_bilinear_by_hand_as_pytorch_prints_it():
    """torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear") of [[1, 2], [3, 4]]."""
    x = tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = [
        [1.0, 1.25, 1.75, 2.0],
        [1.5, 1.75, 2.25, 2.5],
        [2.5, 2.75, 3.25, 3.5],
        [3.0, 3.25, 3.75, 4.0],
    ]
    np.testing.assert_allclose(F.interpolate(x, scale_factor=2, mode="bilinear").numpy()[0, 0], expected)
    corners = F.interpolate(x, size=(2, 4), mode="bilinear", align_corners=True).numpy()[0, 0]
    np.testing.assert_allclose(corners, [[1, 4 / 3, 5 / 3, 2], [3, 10 / 3, 11 / 3, 4]])


def test_nearest_by_hand():
    x = tensor(np.arange(4.0).reshape(1, 1, 1, 4))
    # src = floor(dst * in/out): 4 -> 3 reads 0, 1, 2; 4 -> 6 reads 0, 0, 1, 2, 2, 3
    np.testing.assert_array_equal(F.interpolate(x, size=(1, 3)).numpy().ravel(), [0, 1, 2])
    np.testing.assert_array_equal(F.interpolate(x, size=(1, 6)).numpy().ravel(), [0, 0, 1, 2, 2, 3])
    np.testing.assert_array_equal(
        F.interpolate(x, scale_factor=2).numpy(), F.upsample_nearest(x, 2).numpy()
    )


def loop_bilinear(x, out_hw):
    """Half-pixel bilinear (align_corners=False), one output pixel at a time."""
    n, c, h, w = x.shape
    y = np.zeros((n, c, *out_hw))

    def source(dst, size_in, size_out):
        src = max((dst + 0.5) * size_in / size_out - 0.5, 0.0)
        i0 = min(int(src), size_in - 1)
        return i0, min(i0 + 1, size_in - 1), src - i0

    for oh, ow in itertools.product(range(out_hw[0]), range(out_hw[1])):
        r0, r1, a = source(oh, h, out_hw[0])
        q0, q1, b = source(ow, w, out_hw[1])
        y[:, :, oh, ow] = (
            (1 - a) * ((1 - b) * x[:, :, r0, q0] + b * x[:, :, r0, q1])
            + a * ((1 - b) * x[:, :, r1, q0] + b * x[:, :, r1, q1])
        )
    return y


@pytest.mark.parametrize("out_hw", [(7, 3), (2, 9), (5, 5)])
def test_interpolate_matches_loops_and_gradcheck(out_hw):
    x = t64(2, 2, 4, 5)
    bilinear = F.interpolate(x, size=out_hw, mode="bilinear")
    np.testing.assert_allclose(bilinear.numpy(), loop_bilinear(x.numpy(), out_hw), atol=1e-12)
    nearest = F.interpolate(x, size=out_hw)
    rows = [min(oh * 4 // out_hw[0], 3) for oh in range(out_hw[0])]
    cols = [min(ow * 5 // out_hw[1], 4) for ow in range(out_hw[1])]
    np.testing.assert_array_equal(nearest.numpy(), x.numpy()[:, :, rows][:, :, :, cols])
    for mode in ("nearest", "bilinear"):
        assert gradcheck(lambda x, mode=mode: F.interpolate(x, size=out_hw, mode=mode), [x])
    assert gradcheck(lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"), [x])


def test_scale_factor_gives_floor_of_the_scaled_size():
    x = t64(1, 1, 5, 7)
    assert F.interpolate(x, scale_factor=0.5).shape == (1, 1, 2, 3)
    assert F.interpolate(x, scale_factor=(2, 1.5), mode="bilinear").shape == (1, 1, 10, 10)


def test_interpolate_errors():
    x = t64(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"interpolate: give exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match=r"interpolate: give exactly one of size and scale_factor"):
        F.interpolate(x, size=2, scale_factor=2)
    with pytest.raises(ValueError, match=r"interpolate: mode must be 'nearest' or 'bilinear', got 'bicubic'"):
        F.interpolate(x, size=2, mode="bicubic")
    with pytest.raises(ValueError, match=r"interpolate: align_corners only applies to mode 'bilinear'"):
        F.interpolate(x, size=2, align_corners=False)
    with pytest.raises(ValueError, match=r"interpolate: size must be a positive int .* got \(0, 2\)"):
        F.interpolate(x, size=(0, 2))
    with pytest.raises(ValueError, match=r"interpolate: scale_factor 0.1 gives an empty output \(0, 0\)"):
        F.interpolate(x, scale_factor=0.1)
    with pytest.raises(ValueError, match=r"interpolate: input must be 4-D"):
        F.interpolate(t64(4, 4), size=2)


# ------------------------------------------------------------------ softmax, log_softmax


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax(dim):
    x = t64(3, 4, 5)
    e = np.exp(x.numpy())
    expected = e / e.sum(axis=dim, keepdims=True)
    np.testing.assert_allclose(F.softmax(x, dim=dim).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(x, dim).numpy(), np.log(expected), rtol=1e-12)
    assert gradcheck(lambda x: F.softmax(x, dim=dim), [x])
    assert gradcheck(lambda x: F.log_softmax(x, dim=dim), [x])


def test_softmax_of_large_values_stays_finite():
    x = tensor(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(F.softmax(x, dim=1).numpy(), [[0.5, 0.5, 0.0]])
    np.testing.assert_allclose(F.log_softmax(x, dim=1).numpy(), [[-np.log(2), -np.log(2), -2000 - np.log(2)]])


def test_softmax_errors():
    x = t64(2, 3)
    with pytest.raises(TypeError, match=r"softmax: give dim=, the axis whose entries should sum to 1 \(input \(2, 3\)\)"):
        F.softmax(x)
    with pytest.raises(ValueError, match=r"log_softmax: dim 2 is out of range for input of shape \(2, 3\)"):
        F.log_softmax(x, dim=2)


# ------------------------------------------------------------------ l1_loss


def test_l1_loss_reductions_and_gradcheck():
    a, b = t64(2, 3, seed=4), t64(2, 3, seed=5, requires_grad=False)
    diff = np.abs(a.numpy() - b.numpy())
    np.testing.assert_allclose(F.l1_loss(a, b).item(), diff.mean())
    np.testing.assert_allclose(F.l1_loss(a, b, reduction="sum").item(), diff.sum())
    np.testing.assert_allclose(F.l1_loss(a, b, reduction="none").numpy(), diff)
    assert gradcheck(lambda a: F.l1_loss(a, b), [a])
    F.l1_loss(a, b, reduction="sum").backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.sign(a.numpy() - b.numpy()))


def test_l1_loss_errors():
    with pytest.raises(ValueError, match=r"l1_loss: input \(2, 3\) and target \(3,\) differ"):
        F.l1_loss(t64(2, 3), t64(3))
    with pytest.raises(ValueError, match=r"l1_loss: reduction must be 'mean', 'sum' or 'none', got 'max'"):
        F.l1_loss(t64(2), t64(2), reduction="max")
