"""MEC (backends/mec.py): the stride-1 convolution from kw shifted copies and kh
GEMMs, against im2col in float64 over many shapes, in bands, as the cpu backend's
input gradient, under gradcheck, and the rule that picks it."""

from __future__ import annotations

import numpy as np
import pytest

from minidl.backends import mec, winograd
from minidl.backends.cpu import CpuBackend

CPU = CpuBackend()
ONE = (1, 1)

# (N, C_in, C_out, H, W, (kh, kw), padding, dilation): odd and tiny sizes, kernels of
# 1, 2, 3 and 5 taps, non-square kernels, no/uneven/large padding, dilation.
SHAPES = [
    (1, 1, 1, 3, 3, (3, 3), (0, 0), ONE),
    (2, 3, 5, 7, 9, (3, 3), (1, 1), ONE),
    (1, 4, 2, 6, 5, (2, 3), (0, 2), ONE),
    (2, 4, 3, 11, 8, (3, 2), (2, 1), (2, 3)),
    (1, 2, 3, 5, 5, (1, 1), (0, 0), ONE),
    (1, 3, 2, 4, 4, (5, 5), (2, 2), ONE),
    (1, 5, 4, 1, 1, (3, 3), (1, 1), ONE),
    (3, 6, 7, 13, 10, (3, 3), (1, 1), (2, 2)),
]


def _data(shape, dtype=np.float64, seed=0):
    n, c, k, h, w, kernel, _, _ = shape
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c, h, w)).astype(dtype),
            rng.standard_normal((k, c, *kernel)).astype(dtype))  # fmt: skip


def _im2col(fn, *args):
    with winograd.conv_algorithm("im2col"):
        return fn(*args)


@pytest.mark.parametrize("shape", SHAPES)
def test_equals_im2col_in_float64(shape):
    x, w = _data(shape)
    padding, dilation = shape[6], shape[7]
    want = _im2col(CPU.conv2d, x, w, ONE, padding, dilation)
    got = mec.conv2d(x, w, padding, dilation)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES[1:4])
def test_bands_of_output_rows_add_up(monkeypatch, shape):
    # Tiny budgets force one output row per band: the same numbers as one band.
    x, w = _data(shape)
    padding, dilation = shape[6], shape[7]
    whole = mec.conv2d(x, w, padding, dilation)
    monkeypatch.setattr(mec, "OUTPUT_BYTES", 1)
    monkeypatch.setattr(mec, "COLS_BYTES", 1)
    np.testing.assert_allclose(mec.conv2d(x, w, padding, dilation), whole, rtol=1e-13, atol=1e-13)


def test_shifted_columns_are_the_flat_image_shifted_with_zeros_past_its_end():
    flat = np.arange(2 * 12, dtype=np.float64).reshape(2, 12)
    out = np.full((3, 2, 5), np.nan)
    cols = mec.shifted_columns(flat, 6, out, kw=3, dw=2)  # shifts 0, 2, 4 from position 6
    assert cols.shape == (6, 5)
    np.testing.assert_array_equal(cols[0], [6, 7, 8, 9, 10])
    np.testing.assert_array_equal(cols[2], [8, 9, 10, 11, 0])  # row (j=1, c=0)
    np.testing.assert_array_equal(cols[5], [22, 23, 0, 0, 0])  # row (j=2, c=1)


@pytest.mark.parametrize("c_in, c_out", [(4, 2), (2, 4), (3, 3)])
def test_cpu_input_gradient_through_mec_equals_col2im(monkeypatch, c_in, c_out):
    # conv2d_grad_input is the rotated-filter convolution when MEC computes it.
    rng = np.random.default_rng(1)
    w = rng.standard_normal((c_out, c_in, 3, 2))
    gy = rng.standard_normal((2, c_out, 6, 8))
    want = _im2col(CPU.conv2d_grad_input, gy, w, (6, 9), ONE, (1, 0), ONE)
    monkeypatch.setenv("MINIDL_CONV", "mec")
    np.testing.assert_allclose(CPU.conv2d_grad_input(gy, w, (6, 9), ONE, (1, 0), ONE), want,
                               rtol=1e-12, atol=1e-12)  # fmt: skip


def test_float32_error_is_im2cols():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((1, 64, 20, 20)), rng.standard_normal((32, 64, 3, 3))
    exact = mec.conv2d(x, w, ONE, ONE)
    got = mec.conv2d(x.astype(np.float32), w.astype(np.float32), ONE, ONE)
    assert got.dtype == np.float32
    assert np.abs(got - exact).max() / np.abs(exact).max() < 1e-6


def test_gradcheck_through_mec(monkeypatch):
    import minidl
    import minidl.functional as F

    monkeypatch.setenv("MINIDL_CONV", "mec")
    rng = np.random.default_rng(4)
    x = minidl.tensor(rng.standard_normal((2, 3, 6, 5)), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((4, 3, 3, 2)), requires_grad=True)
    assert minidl.gradcheck(lambda x, w: F.conv2d(x, w, padding=(1, 2), dilation=(1, 2)), [x, w])


def test_minidl_conv_and_auto_choose_mec(monkeypatch):
    monkeypatch.setenv("MINIDL_CONV", "auto")
    assert mec.use_mec(64, 64, ONE)  # VGG16's block1_conv2
    assert not mec.use_mec(3, 64, ONE)  # too thin: 3 input channels
    assert not mec.use_mec(64, 3, ONE)  # too thin: 3 output channels
    assert not mec.use_mec(256, 512, ONE)  # many outputs: im2col's one GEMM wins
    assert not mec.use_mec(64, 64, (2, 2))  # stride 2: the shifts are not views
    monkeypatch.setenv("MINIDL_CONV", "mec")
    assert mec.use_mec(3, 512, ONE) and not mec.use_mec(3, 512, (1, 2))
    assert not winograd.use_winograd("cpu", 512, (64, 64), (3, 3), ONE, ONE, ONE)
    for setting in ("im2col", "winograd"):
        monkeypatch.setenv("MINIDL_CONV", setting)
        assert not mec.use_mec(64, 64, ONE)
