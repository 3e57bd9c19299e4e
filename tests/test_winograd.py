"""Winograd F(2x2, 3x3) and F(4x4, 3x3): the matrices, the NumPy algorithm against
im2col (float64, many shapes), its float32 error against float64, and
kernels/winograd.cu on cuda-emu against the NumPy version."""

from __future__ import annotations

import math

import numpy as np
import pytest

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


def test_bands_of_tile_rows_add_up(monkeypatch):
    # A tiny workspace forces one tile row per band: same numbers as one band.
    x, w, gy, pad = _data((2, 3, 4, 17, 9, 1))
    whole = W.conv2d(x, w, pad), W.conv2d_grad_weight(x, gy, pad)
    monkeypatch.setattr(W, "WORKSPACE_BYTES", 1)
    np.testing.assert_allclose(W.conv2d(x, w, pad), whole[0], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(W.conv2d_grad_weight(x, gy, pad), whole[1], rtol=1e-13, atol=1e-13)


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
    assert W.supports((3, 3), ONE, ONE)
    assert not W.supports((3, 3), (2, 2), ONE)
    assert not W.supports((3, 3), ONE, (2, 2))
    assert not W.supports((5, 5), ONE, ONE)


def test_bad_tile_is_refused():
    with pytest.raises(ValueError, match="tile must be one of"):
        W.matrices(3)


# --------------------------------------------------------------- kernels/winograd.cu


def _emulated_module():
    from minidl.backends.emulated import EmulatedModule, emulator_available

    ok, reason = emulator_available()
    if not ok:
        pytest.skip(f"cuda-emu: {reason}")
    from minidl.paths import kernels_dir

    return EmulatedModule([f"{kernels_dir()}/winograd.cu"])


@pytest.fixture(scope="module")
def emu():
    return _emulated_module()


def _launch(module, name, total, *args):
    args = [np.int32(a) if isinstance(a, int) else a for a in args]
    module.get_function(name)((max(1, math.ceil(total / 32)),), (32,), tuple(args))


def _kernel_conv(module, x, w, pad, adjoint=0, tile=4):
    """conv2d (or, adjoint=1, its input gradient of a conv with padding 2 - pad) from the
    .cu transforms, with NumPy's matmul as the GEMM between them; two bands of tile rows."""
    n, c, h, wd = x.shape
    k = w.shape[1] if adjoint else w.shape[0]
    a = tile + 2
    oh, ow = h + 2 * pad[0] - 2, wd + 2 * pad[1] - 2
    th, tw = math.ceil(oh / tile), math.ceil(ow / tile)
    u = np.empty((a * a, k, c), np.float32)
    _launch(module, "winograd_weight_transform", k * c, w, u, k, c, adjoint)
    y = np.full((n, k, oh, ow), np.nan, np.float32)
    for b in range(n):
        for r0, rn in ((0, (th + 1) // 2), ((th + 1) // 2, th // 2)):
            if rn == 0:
                continue
            v = np.empty((a * a, c, rn * tw), np.float32)
            _launch(module, "winograd_input_transform", c * rn * tw,
                    x, v, b, c, h, wd, pad[0], pad[1], tw, r0, rn)  # fmt: skip
            m = np.ascontiguousarray(np.matmul(u, v))
            _launch(module, "winograd_output_transform", k * rn * tw,
                    m, y, b, k, oh, ow, tw, r0, rn)  # fmt: skip
    return y


def _kernel_grad_weight(module, x, gy, pad, tile=4):
    n, c, h, wd = x.shape
    k, oh, ow = gy.shape[1:]
    a = tile + 2
    th, tw = math.ceil(oh / tile), math.ceil(ow / tile)
    du = np.zeros((a * a, k, c), np.float32)
    for b in range(n):
        v = np.empty((a * a, c, th * tw), np.float32)
        g_m = np.empty((a * a, k, th * tw), np.float32)
        _launch(module, "winograd_input_transform", c * th * tw,
                x, v, b, c, h, wd, pad[0], pad[1], tw, 0, th)  # fmt: skip
        _launch(module, "winograd_output_grad_transform", k * th * tw,
                gy, g_m, b, k, oh, ow, tw, 0, th)  # fmt: skip
        du += np.matmul(g_m, v.transpose(0, 2, 1))
    gw = np.empty((k, c, 3, 3), np.float32)
    _launch(module, "winograd_weight_grad_transform", k * c, np.ascontiguousarray(du), gw, k, c)
    return gw


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_cuda_kernels_equal_numpy_winograd(emu, shape):
    x, w, gy, pad = _data(shape, np.float32)
    hw = x.shape[2:]

    def close(got, want, what):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=what)

    close(_kernel_conv(emu, x, w, pad), W.conv2d(x, w, pad), "conv2d")
    adjoint_pad = (2 - pad[0], 2 - pad[1])
    close(_kernel_conv(emu, gy, w, adjoint_pad, adjoint=1),
          W.conv2d_grad_input(gy, w, hw, pad), "conv2d_grad_input")  # fmt: skip
    close(_kernel_grad_weight(emu, x, gy, pad), W.conv2d_grad_weight(x, gy, pad),
          "conv2d_grad_weight")  # fmt: skip
