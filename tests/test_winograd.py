"""Winograd F(2x2, 3x3) and F(4x4, 3x3): the matrices, the NumPy algorithm against
im2col (float64, many shapes), its float32 error against float64, and
kernels/winograd.cu on cuda-emu against the NumPy version."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from devices import emulator_skip_reason

from minidl.backends import winograd as W
from minidl.backends.cpu import CpuBackend

CPU = CpuBackend()
ONE = (1, 1)

# (N, C_in, C_out, H, W, padding): odd, prime and tiny sizes, sizes that are and are
# not whole tiles, padding 0, 1 and 2 (the adjoint of padding 0).
SHAPES = [
    (1, 1, 1, 3, 3, 0),
    (1, 3, 2, 5, 7, 0),
    (2, 3, 5, 7, 9, 1),
    (1, 4, 3, 8, 8, 1),
    (1, 2, 3, 1, 1, 1),
    (2, 5, 4, 13, 6, 2),
    (1, 6, 7, 11, 10, 1),
]


def _data(shape, dtype=np.float64, seed=0):
    n, c, k, h, w, p = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c, 3, 3)).astype(dtype)
    gy = rng.standard_normal((n, k, h + 2 * p - 2, w + 2 * p - 2)).astype(dtype)
    return x, wt, gy, (p, p)


@pytest.mark.parametrize("tile", W.TILES)
def test_one_dimensional_identity(tile):
    # y = Aᵀ[(G g) ⊙ (Bᵀ d)] is the 3-tap correlation of d with g: the whole method.
    bt, g_mat, at = W.matrices(tile)
    rng = np.random.default_rng(1)
    d, g = rng.standard_normal(tile + 2), rng.standard_normal(3)
    want = np.array([d[i : i + 3] @ g for i in range(tile)])
    np.testing.assert_allclose(at @ ((g_mat @ g) * (bt @ d)), want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("tile", W.TILES)
def test_weight_transform_is_g_g_gt_for_every_filter(tile):
    # One GEMM over all filters must equal G g Gᵀ filter by filter, also for filters
    # that are a strided view (every other input channel) rather than a whole array.
    _, g_mat, _ = W.matrices(tile)
    w = np.random.default_rng(2).standard_normal((3, 8, 3, 3))[:, ::2]
    u = W.weight_transform(w, tile)
    a = tile + 2
    assert u.shape == (a * a, 3, 4)
    for k in range(3):
        for c in range(4):
            want = g_mat @ w[k, c] @ g_mat.T
            np.testing.assert_allclose(u[:, k, c].reshape(a, a), want, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("tile", W.TILES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_tiles_are_the_transform_tile_by_tile(tile, dtype):
    # output_tiles(at, m)[k] must be Aᵀ M A of the k-th column of M, laid out as
    # the tile (m x m, rows of m); the runs _runs sees must be those rows.
    _, _, at = W.matrices(tile, dtype)
    a = tile + 2
    m = np.random.default_rng(3).standard_normal((a * a, 5, 7)).astype(dtype)
    tiles = W.output_tiles(at, m)
    assert tiles.shape == (5 * 7, tile * tile)
    for k, (c, t) in enumerate(np.ndindex(5, 7)):
        want = at @ m[:, c, t].reshape(a, a) @ at.T
        np.testing.assert_allclose(tiles[k].reshape(tile, tile), want, rtol=1e-5, atol=1e-5)
    runs = W._runs(tiles.reshape(5 * 7, tile, tile))
    assert runs.shape == (5 * 7, tile) and runs.dtype.itemsize == tile * np.dtype(dtype).itemsize
    assert runs[4, 1].tobytes() == tiles[4].reshape(tile, tile)[1].tobytes()


@pytest.mark.parametrize("tile", W.TILES)
def test_weight_transform_of_the_adjoint_filters_without_making_them(tile):
    # adjoint=True (reversed columns of kron(G, G), a transposed view) must equal
    # transforming the rotated, channel-swapped filters themselves.
    w = np.random.default_rng(5).standard_normal((3, 10, 3, 3))[:, ::2]
    u = W.weight_transform(w, tile, adjoint=True)
    assert u.shape == ((tile + 2) ** 2, 5, 3)
    np.testing.assert_allclose(u, W.weight_transform(W.adjoint_filters(w), tile), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("tile", W.TILES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_equals_im2col_in_float64(tile, shape):
    x, w, gy, pad = _data(shape)
    hw = x.shape[2:]
    np.testing.assert_allclose(W.conv2d(x, w, pad, tile), CPU.conv2d(x, w, ONE, pad, ONE),
                               rtol=1e-12, atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(
        W.conv2d_grad_input(gy, w, hw, pad, tile),
        CPU.conv2d_grad_input(gy, w, hw, ONE, pad, ONE), rtol=1e-12, atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(
        W.conv2d_grad_weight(x, gy, pad, tile),
        CPU.conv2d_grad_weight(x, gy, (3, 3), ONE, pad, ONE), rtol=1e-12, atol=1e-12)  # fmt: skip


@pytest.mark.parametrize("budget", ["WORKSPACE_BYTES", "GATHER_BYTES"])
def test_bands_of_tiles_add_up(monkeypatch, budget):
    # A tiny workspace forces one tile row per band; a tiny gather budget copies the
    # strided input tiles one channel at a time, each transformed straight into its
    # rows of V.  Either way: the same numbers as one band, one copy.
    x, w, gy, pad = _data((2, 3, 4, 17, 9, 1))
    whole = W.conv2d(x, w, pad), W.conv2d_grad_weight(x, gy, pad)
    monkeypatch.setattr(W, budget, 1)
    np.testing.assert_allclose(W.conv2d(x, w, pad), whole[0], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(W.conv2d_grad_weight(x, gy, pad), whole[1], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("padding", [(0, 0), (1, 1), (2, 1), (1, 2)])
def test_padded_image_has_a_zero_frame_even_in_reused_memory(monkeypatch, padding):
    # _padded zeroes only the frame around x: memory that held other values
    # (NaN here) must not show through anywhere.
    x = np.arange(2 * 5 * 7, dtype=np.float64).reshape(2, 5, 7) + 1
    (ph, pw), tile = padding, 4
    th, tw = math.ceil((5 + 2 * ph - 2) / tile), math.ceil((7 + 2 * pw - 2) / tile)
    monkeypatch.setattr(np, "empty", lambda shape, dtype=float: np.full(shape, np.nan, dtype))
    monkeypatch.setattr(W.threads, "MIN_BYTES", 0)  # a share of the channels per thread
    monkeypatch.setattr(W.threads, "THREADS", 2)
    got = W._padded(x, padding, th, tw, tile)
    want = np.zeros((2, th * tile + 2, tw * tile + 2))
    hh, ww = min(5, want.shape[1] - ph), min(7, want.shape[2] - pw)
    want[:, ph : ph + hh, pw : pw + ww] = x[:, :hh, :ww]
    np.testing.assert_array_equal(got, want)


def _count_weight_transforms(monkeypatch):
    """A list that gets one entry per call of W.weight_transform."""
    calls, transform = [], W.weight_transform
    monkeypatch.setattr(W, "weight_transform", lambda *a, **kw: calls.append(1) or transform(*a, **kw))
    return calls


def test_slices_of_output_channels_add_up(monkeypatch):
    # A tiny filter budget builds U one output channel at a time (one image, one
    # band of tiles): the same numbers as all of U at once.  The input gradient's
    # output channels are w's input channels (its U slices are w[:, k0:k1]).
    x, w, gy, pad = _data((1, 3, 5, 13, 10, 1))
    hw = x.shape[2:]
    whole = W.conv2d(x, w, pad), W.conv2d_grad_input(gy, w, hw, pad)
    monkeypatch.setattr(W, "FILTER_BYTES", 1)
    calls = _count_weight_transforms(monkeypatch)
    np.testing.assert_allclose(W.conv2d(x, w, pad), whole[0], rtol=1e-13, atol=1e-13)
    assert len(calls) == 5  # one slice per output channel
    np.testing.assert_allclose(W.conv2d_grad_input(gy, w, hw, pad), whole[1], rtol=1e-13, atol=1e-13)
    assert len(calls) == 5 + 3


def test_several_bands_build_whole_filters_once(monkeypatch):
    # Each band (and image) needs every slice of U: with several, U is built whole,
    # once, whatever the filter budget.
    x, w, _, pad = _data((2, 3, 5, 13, 10, 1))
    whole = W.conv2d(x, w, pad)
    monkeypatch.setattr(W, "FILTER_BYTES", 1)
    monkeypatch.setattr(W, "WORKSPACE_BYTES", 1)  # one tile row per band
    calls = _count_weight_transforms(monkeypatch)
    np.testing.assert_allclose(W.conv2d(x, w, pad), whole, rtol=1e-13, atol=1e-13)
    assert len(calls) == 1


def _float32_error(tile):
    """Max error of the float32 Winograd (and of float32 im2col) against float64,
    relative to the largest output, on a VGG-like layer."""
    x, w, _, pad = _data((1, 64, 64, 16, 16, 1), seed=3)
    exact = CPU.conv2d(x, w, ONE, pad, ONE)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    scale = np.abs(exact).max()
    wino = np.abs(W.conv2d(x32, w32, pad, tile) - exact).max() / scale
    im2col = np.abs(CPU.conv2d(x32, w32, ONE, pad, ONE) - exact).max() / scale
    return wino, im2col


@pytest.mark.parametrize("tile, bound", [(2, 1e-6), (4, 2e-5)])
def test_float32_error_against_float64(tile, bound):
    # Measured here (64 -> 64 channels): im2col 4.3e-7, F(2x2) 3.8e-7, F(4x4) 5.0e-6
    # of the largest output: F(4x4)'s larger matrix entries cost about 12x im2col's
    # error, still well inside the equivalence tests' tolerances (1e-4).
    wino, im2col = _float32_error(tile)
    assert im2col < 1e-6
    assert wino < bound, f"F({tile}x{tile}) float32 error {wino:.2e} (im2col {im2col:.2e})"


def test_supports_only_3x3_stride_1_dilation_1():
    assert W.supports((3, 3), ONE, ONE, ONE)
    assert W.supports((3, 3), ONE, (2, 0), ONE)
    assert not W.supports((3, 3), (2, 2), ONE, ONE)
    assert not W.supports((3, 3), ONE, ONE, (2, 2))
    assert not W.supports((5, 5), ONE, ONE, ONE)
    assert not W.supports((3, 3), ONE, (3, 3), ONE)


def test_minidl_conv_chooses_the_algorithm(monkeypatch):
    big, small = (64, (64, 64)), (3, (8, 8))  # (fewer of in/out channels, output size)

    def chosen(setting, case, device="cuda-emu", stride=ONE):
        monkeypatch.setenv("MINIDL_CONV", setting)
        return W.use_winograd(device, case[0], case[1], (3, 3), stride, ONE, ONE)

    assert chosen("winograd", small) and chosen("auto", big) and chosen("", big)
    narrow = (32, (64, 64))
    assert chosen("winograd", small, device="cpu") and chosen("auto", big, device="cpu")
    assert not chosen("auto", narrow, device="cpu")  # cpu wants >= 64 channels
    assert not chosen("im2col", big) and not chosen("auto", small)
    assert not chosen("winograd", big, stride=(2, 2))  # where it does not apply: im2col
    monkeypatch.setenv("MINIDL_CONV", "fft")
    with pytest.raises(ValueError, match="MINIDL_CONV must be one of im2col, winograd, mec, auto"):
        W.algorithm()


def test_conv_algorithm_sets_minidl_conv_for_a_block_and_restores_it(monkeypatch):
    monkeypatch.setenv("MINIDL_CONV", "im2col")
    with W.conv_algorithm("winograd"):
        assert W.algorithm() == "winograd"
    assert W.algorithm() == "im2col"
    monkeypatch.delenv("MINIDL_CONV")
    with pytest.raises(RuntimeError), W.conv_algorithm("winograd"):
        raise RuntimeError("the variable is restored on errors too")
    assert "MINIDL_CONV" not in os.environ
    with pytest.raises(ValueError, match="must be one of im2col, winograd, mec, auto"):
        W.conv_algorithm("fft").__enter__()


def test_cpu_input_gradient_under_winograd_is_the_numpy_winograd_one():
    # The cpu backend hands it to winograd.conv2d_grad_input: the same bits.
    x, w, gy, pad = _data((1, 6, 5, 9, 11, 1), np.float32)
    with W.conv_algorithm("winograd"):
        got = CPU.conv2d_grad_input(gy, w, x.shape[2:], ONE, pad, ONE)
    np.testing.assert_array_equal(got, W.conv2d_grad_input(gy, w, x.shape[2:], pad))


def test_bad_tile_is_refused():
    with pytest.raises(ValueError, match="tile must be one of"):
        W.matrices(3)


# --------------------------------------------------------------- kernels/winograd.cu


@pytest.fixture
def emu(monkeypatch):
    """The cuda-emu backend forced to Winograd, with a workspace of a few tile rows."""
    from minidl.backends import winograd_launch
    from minidl.backends.cuda import make_emulated_backend
    reason = emulator_skip_reason()
    if reason:
        pytest.skip(f"cuda-emu: {reason}")
    monkeypatch.setenv("MINIDL_CONV", "winograd")
    monkeypatch.setattr(winograd_launch, "WORKSPACE_BYTES", 36 * 4 * 4 * 8)
    backend = make_emulated_backend()
    assert winograd_launch.tile_size(backend) == W.TILE  # the two compare the same algorithm
    return backend


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_cuda_kernels_equal_numpy_winograd(emu, shape):
    x, w, gy, pad = _data(shape, np.float32)
    hw = x.shape[2:]

    def close(got, want, what):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=what)

    close(emu.conv2d(x, w, ONE, pad, ONE), W.conv2d(x, w, pad), "conv2d")
    close(emu.conv2d_grad_input(gy, w, hw, ONE, pad, ONE), W.conv2d_grad_input(gy, w, hw, pad),
          "conv2d_grad_input")  # fmt: skip
    close(emu.conv2d_grad_weight(x, gy, (3, 3), ONE, pad, ONE), W.conv2d_grad_weight(x, gy, pad),
          "conv2d_grad_weight")  # fmt: skip


def test_gradcheck_through_winograd(monkeypatch):
    # The autograd path with MINIDL_CONV=winograd, in float64: forward and both gradients.
    import minidl
    import minidl.functional as F

    monkeypatch.setenv("MINIDL_CONV", "winograd")
    rng = np.random.default_rng(4)
    x = minidl.tensor(rng.standard_normal((2, 3, 6, 5)), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    assert minidl.gradcheck(lambda x, w: F.conv2d(x, w, padding=1), [x, w])
