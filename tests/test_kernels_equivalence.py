"""The hand-written kernels (kernels/*.cu) give the same results as the cpu backend.

Every test runs on "cuda-emu" (the kernels compiled for CPU threads) and, marked
``gpu``, on "cuda" (the same kernels through CuPy), skipped without CuPy and a GPU:

    pytest tests/test_kernels_equivalence.py            # cuda-emu (+ cuda if present)
    pytest -m gpu tests/test_kernels_equivalence.py     # only the cuda runs

Shapes are tiny on purpose (the emulator runs each CUDA thread as an OS thread) but
chosen to hit the awkward cases: odd and prime sizes, sizes that are not a multiple
of the tiles (16x16; the GEMM 64x64 with K steps of 16), strides, paddings,
dilations, non-square kernels, batch > 1, and
input sizes that need conv_transpose2d's output_padding.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from devices import skip_reason

from minidl import paths
from minidl.backends import cuda as cuda_glue
from minidl.backends import gemm as gemm_glue
from minidl.backends.cpu import CpuBackend
from minidl.backends.gemm import Matrix

CPU = CpuBackend()


# ----------------------------------------------------------------- devices


_BACKENDS: dict = {}


def _backend(device: str):
    reason = skip_reason(device)
    if reason:
        pytest.skip(f"{device}: {reason}")
    if device not in _BACKENDS:
        make = cuda_glue.make_cuda_backend if device == "cuda" else cuda_glue.make_emulated_backend
        _BACKENDS[device] = make()
    return _BACKENDS[device]


DEVICES = ["cuda-emu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(params=DEVICES)
def kb(request):
    """The kernel backend under test."""
    return _backend(request.param)


def dev(kb, a):
    """numpy -> the backend's array module."""
    return kb.xp.asarray(a)


def host(a):
    """Backend array -> numpy."""
    return a.get() if hasattr(a, "get") else np.asarray(a)


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def assert_close(got, want, what: str):
    got = host(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


# ------------------------------------------------------------- convolution

# (N, C_in, H, W, C_out, (kh, kw), stride, padding, dilation)
CONV_CASES = [
    (1, 1, 5, 5, 1, (3, 3), (1, 1), (0, 0), (1, 1)),
    (2, 3, 7, 9, 5, (3, 2), (2, 1), (1, 2), (1, 2)),
    (3, 2, 11, 13, 4, (5, 3), (3, 2), (2, 1), (2, 1)),
    (2, 17, 6, 5, 19, (1, 1), (1, 1), (0, 0), (1, 1)),
    (1, 4, 9, 10, 3, (4, 4), (2, 3), (1, 1), (1, 1)),  # 9 and 10 need output_padding
    (2, 20, 5, 6, 33, (3, 3), (1, 1), (1, 1), (1, 1)),  # M, N, K all > one tile
    (1, 3, 4, 3, 2, (2, 3), (1, 1), (2, 0), (3, 1)),
]


def _conv_ids(case):
    n, c, h, w, co, k, s, p, d = case
    return f"{n}x{c}x{h}x{w}-o{co}-k{k[0]}{k[1]}-s{s[0]}{s[1]}-p{p[0]}{p[1]}-d{d[0]}{d[1]}"


def _check_conv(kb, case, seed=0):
    n, c, h, w, c_out, k, s, p, d = case
    rng = np.random.default_rng(seed)
    x, wt = rand(rng, n, c, h, w), rand(rng, c_out, c, *k)
    y = CPU.conv2d(x, wt, s, p, d)
    assert_close(kb.conv2d(dev(kb, x), dev(kb, wt), s, p, d), y, "conv2d")
    gy = rand(rng, *y.shape)
    assert_close(
        kb.conv2d_grad_input(dev(kb, gy), dev(kb, wt), (h, w), s, p, d),
        CPU.conv2d_grad_input(gy, wt, (h, w), s, p, d),
        "conv2d_grad_input",
    )
    assert_close(
        kb.conv2d_grad_weight(dev(kb, x), dev(kb, gy), k, s, p, d),
        CPU.conv2d_grad_weight(x, gy, k, s, p, d),
        "conv2d_grad_weight",
    )


@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_ids)
def test_conv2d_and_grads(kb, case):
    _check_conv(kb, case)


@pytest.mark.parametrize("case", CONV_CASES[1:3] + CONV_CASES[5:6], ids=_conv_ids)
def test_conv2d_with_xp_matmul_gemm(kb, case, monkeypatch):
    """MINIDL_GEMM=cublas swaps kernels/gemm.cu for xp.matmul; results agree."""
    monkeypatch.setenv("MINIDL_GEMM", "cublas")
    _check_conv(kb, case)


@pytest.mark.parametrize("split", ["one-row-chunks", "two-row-chunks", "one-image-chunks"])
@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[2]], ids=_conv_ids)
def test_conv2d_chunked_im2col(kb, case, split, monkeypatch):
    """A tiny column budget splits im2col over images and output rows; same results."""
    n, c, h, w, c_out, k, s, p, d = case
    rng = np.random.default_rng(1)
    x, wt = rand(rng, n, c, h, w), rand(rng, c_out, c, *k)
    gy = rand(rng, *CPU.conv2d(x, wt, s, p, d).shape)
    whole = [
        host(kb.conv2d(dev(kb, x), dev(kb, wt), s, p, d)),
        host(kb.conv2d_grad_input(dev(kb, gy), dev(kb, wt), (h, w), s, p, d)),
        host(kb.conv2d_grad_weight(dev(kb, x), dev(kb, gy), k, s, p, d)),
    ]
    kk, (oh, ow) = c * k[0] * k[1], whole[0].shape[2:]
    row_bytes = kk * ow * 4  # one output row's columns, float32
    budget = {"one-row-chunks": 1, "two-row-chunks": 2 * row_bytes}.get(split, oh * row_bytes)
    monkeypatch.setattr(cuda_glue, "COLUMN_BUDGET_BYTES", budget)
    chunks = list(kb._chunks(n, kk, oh, ow))
    assert len(chunks) > 1, "the budget should force several chunks"
    chunked = [
        kb.conv2d(dev(kb, x), dev(kb, wt), s, p, d),
        kb.conv2d_grad_input(dev(kb, gy), dev(kb, wt), (h, w), s, p, d),
        kb.conv2d_grad_weight(dev(kb, x), dev(kb, gy), k, s, p, d),
    ]
    for name, a, b in zip(["conv2d", "grad_input", "grad_weight"], chunked, whole):
        assert_close(a, b, f"{name} with {len(chunks)} chunks")


@pytest.mark.parametrize("min_slice", [4, 7, 10**6], ids=["many-slices", "with-remainder", "no-split"])
@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[2]], ids=_conv_ids)
def test_conv2d_grad_weight_split_k(kb, case, min_slice, monkeypatch):
    """Split-K cuts the sum over pixels into slices summed at the end; same result.

    Tiny shapes never reach the real minimum slice length, so it is lowered here;
    a slice length that does not divide the pixel count leaves a remainder GEMM.
    """
    n, c, h, w, c_out, k, s, p, d = case
    monkeypatch.setattr(gemm_glue, "SPLIT_K_MIN_SLICE", min_slice)
    rng = np.random.default_rng(3)
    x = rand(rng, n, c, h, w)
    gy = rand(rng, *CPU.conv2d(x, rand(rng, c_out, c, *k), s, p, d).shape)
    assert_close(
        kb.conv2d_grad_weight(dev(kb, x), dev(kb, gy), k, s, p, d),
        CPU.conv2d_grad_weight(x, gy, k, s, p, d),
        f"conv2d_grad_weight, slices of >= {min_slice} pixels",
    )


@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_ids)
def test_im2col_and_col2im(kb, case):
    """F.unfold / F.fold on the kernels: the whole batch in one launch, equal to cpu."""
    n, c, h, w, _, k, s, p, d = case
    rng = np.random.default_rng(4)
    x = rand(rng, n, c, h, w)
    cols = CPU.im2col(x, k, s, p, d)
    assert_close(kb.im2col(dev(kb, x), k, s, p, d), cols, "im2col")
    g = rand(rng, *cols.shape)
    assert_close(kb.col2im(dev(kb, g), (h, w), k, s, p, d), CPU.col2im(g, (h, w), k, s, p, d), "col2im")


def test_chunks_cover_everything_once(monkeypatch):
    kb = cuda_glue.KernelBackend("test", np, module_loader=None)
    for budget in [1, 100, 4 * 3 * 7 * 5, 4 * 3 * 7 * 5 * 2 + 1, 10**9]:
        monkeypatch.setattr(cuda_glue, "COLUMN_BUDGET_BYTES", budget)
        seen = np.zeros((4, 7), dtype=int)  # (image, output row)
        for n0, nb, oh0, ohn in kb._chunks(4, 3, 7, 5):
            seen[n0 : n0 + nb, oh0 : oh0 + ohn] += 1
        assert (seen == 1).all(), budget


# ----------------------------------------------------------------- pooling

# (N, C, H, W, kernel, stride, padding)
POOL_CASES = [
    (2, 3, 7, 9, (3, 3), (2, 2), (1, 1)),
    (1, 2, 8, 8, (2, 2), (2, 2), (0, 0)),
    (2, 1, 11, 13, (3, 2), (1, 2), (1, 1)),  # overlapping windows share switches
    (1, 3, 5, 17, (5, 3), (3, 3), (2, 1)),
    (3, 2, 6, 5, (1, 1), (1, 1), (0, 0)),
    (1, 1, 19, 3, (4, 3), (3, 1), (2, 1)),
    (2, 2, 7, 9, (2, 3), (2, 3), (1, 1)),  # windows apart, with padding
]


def _pool_ids(case):
    n, c, h, w, k, s, p = case
    return f"{n}x{c}x{h}x{w}-k{k[0]}{k[1]}-s{s[0]}{s[1]}-p{p[0]}{p[1]}"


@pytest.mark.parametrize("ties", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("case", POOL_CASES, ids=_pool_ids)
def test_max_pool_unpool_and_grads(kb, case, ties):
    n, c, h, w, k, s, p = case
    rng = np.random.default_rng(2)
    # With values in {0, 1, 2} most windows hold several equal maxima: the switch
    # must be the first one in row-major window order, as on cpu (and in PyTorch).
    x = rng.integers(0, 3, (n, c, h, w)).astype(np.float32) if ties else rand(rng, n, c, h, w)
    y, idx = CPU.max_pool2d(x, k, s, p)
    y_k, idx_k = kb.max_pool2d(dev(kb, x), k, s, p)
    assert_close(y_k, y, "max_pool2d")
    assert host(idx_k).dtype == np.int64
    np.testing.assert_array_equal(host(idx_k), idx, err_msg="max_pool2d indices")

    gy = rand(rng, *y.shape)
    want = CPU.max_pool2d_grad(gy, idx, (h, w), k, s, p)
    assert_close(kb.max_pool2d_grad(dev(kb, gy), idx_k, (h, w), k, s, p), want, "max_pool2d_grad")

    assert_close(
        kb.max_unpool2d(dev(kb, y), idx_k, (h, w)), CPU.max_unpool2d(y, idx, (h, w)), "unpool"
    )
    g_up = rand(rng, n, c, h, w)
    assert_close(
        kb.max_unpool2d_grad(dev(kb, g_up), idx_k),
        CPU.max_unpool2d_grad(g_up, idx),
        "max_unpool2d_grad",
    )


def test_max_unpool_to_larger_output(kb):
    """Unpooling may target an output bigger than the pooled input (output_size)."""
    rng = np.random.default_rng(3)
    x = rand(rng, 2, 3, 9, 7)
    y, idx = CPU.max_pool2d(x, (2, 2), (2, 2), (0, 0))  # 4x3 from 9x7
    for out_hw in [(9, 7)]:  # default output_size would be 8x6
        assert_close(
            kb.max_unpool2d(dev(kb, y), dev(kb, idx), out_hw),
            CPU.max_unpool2d(y, idx, out_hw),
            f"unpool to {out_hw}",
        )
        g = rand(rng, 2, 3, *out_hw)
        assert_close(
            kb.max_unpool2d_grad(dev(kb, g), dev(kb, idx)),
            CPU.max_unpool2d_grad(g, idx),
            f"unpool grad from {out_hw}",
        )


@pytest.mark.parametrize("case", POOL_CASES, ids=_pool_ids)
def test_avg_pool_and_grad(kb, case):
    n, c, h, w, k, s, p = case
    rng = np.random.default_rng(4)
    x = rand(rng, n, c, h, w)
    y = CPU.avg_pool2d(x, k, s, p)
    assert_close(kb.avg_pool2d(dev(kb, x), k, s, p), y, "avg_pool2d")
    gy = rand(rng, *y.shape)
    assert_close(
        kb.avg_pool2d_grad(dev(kb, gy), (h, w), k, s, p),
        CPU.avg_pool2d_grad(gy, (h, w), k, s, p),
        "avg_pool2d_grad",
    )


# ------------------------------------------------------------------- Gram

GRAM_SHAPES = [(1, 1, 1, 1), (2, 3, 4, 5), (2, 17, 3, 3), (1, 33, 7, 5), (3, 40, 2, 11)]


@pytest.mark.parametrize("shape", GRAM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gram_and_grad(kb, shape):
    rng = np.random.default_rng(5)
    x = rand(rng, *shape)
    g = kb.gram(dev(kb, x))
    assert_close(g, CPU.gram(x), "gram")
    np.testing.assert_array_equal(host(g), host(g).transpose(0, 2, 1), "gram is symmetric")
    n, c = shape[:2]
    g_g = rand(rng, n, c, c)
    assert_close(kb.gram_grad(dev(kb, g_g), dev(kb, x)), CPU.gram_grad(g_g, x), "gram_grad")


@pytest.mark.parametrize("min_slice", [10, 16, 10**6], ids=["uneven-slices", "tile-slices", "no-split"])
def test_gram_split_k(kb, min_slice, monkeypatch):
    """G summed over pixel slices side by side, then added up: the same (symmetric) G."""
    monkeypatch.setattr(gemm_glue, "SPLIT_K_MIN_SLICE", min_slice)
    slices, rule = [], gemm_glue.split_k_slices
    monkeypatch.setattr(cuda_glue, "split_k_slices", lambda *a: slices.append(rule(*a)) or rule(*a))
    x = rand(np.random.default_rng(10), 2, 17, 7, 9)  # 63 pixels; 2 x 2 tiles of 16 channels
    g = kb.gram(dev(kb, x))
    assert_close(g, CPU.gram(x), f"gram, slices of >= {min_slice} pixels")
    np.testing.assert_array_equal(host(g), host(g).transpose(0, 2, 1), "gram is symmetric")
    assert slices == [{10: 6, 16: 3, 10**6: 1}[min_slice]]


def test_gram_grad_with_xp_matmul_gemm(kb, monkeypatch):
    monkeypatch.setenv("MINIDL_GEMM", "cublas")
    rng = np.random.default_rng(6)
    x, g_g = rand(rng, 2, 19, 3, 5), rand(rng, 2, 19, 19)
    assert_close(kb.gram_grad(dev(kb, g_g), dev(kb, x)), CPU.gram_grad(g_g, x), "gram_grad")


# ------------------------------------------------------------------- GEMM


# (m, n, k): the kernel's block computes a 64 x 64 tile of C and walks K in steps of
# 16, so: all below one tile, tiny (1 x 1 x 1, single row / column / k), exact
# multiples, and just past a multiple (65 = 64 + 1, 17 = 16 + 1), mixed.
GEMM_SIZES = [(19, 23, 37), (1, 1, 1), (1, 70, 3), (67, 1, 17), (64, 64, 16), (65, 129, 33)]


@pytest.mark.parametrize("m, n, k", GEMM_SIZES)
@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_kernel_direct(kb, trans_a, trans_b, m, n, k):
    """The SGEMM kernel itself: transposes, alpha/beta, offsets, ld > cols, batch, sizes."""
    rng = np.random.default_rng(7)
    batch = 2
    a = rand(rng, batch, *((k, m) if trans_a else (m, k)))
    b = rand(rng, batch, *((n, k) if trans_b else (k, n)))
    c0 = rand(rng, batch, m, n + 3)  # ld = n + 3: C is a block inside a wider array
    op_a = a.transpose(0, 2, 1) if trans_a else a
    op_b = b.transpose(0, 2, 1) if trans_b else b
    want = c0.copy()
    want[:, :, 1 : n + 1] = 0.5 * op_a @ op_b - 2.0 * c0[:, :, 1 : n + 1]
    c = dev(kb, c0)
    a_mat = Matrix(dev(kb, a), *a.shape[1:], batch_stride=a[0].size)
    b_mat = Matrix(dev(kb, b), *b.shape[1:], batch_stride=b[0].size)
    c_mat = Matrix(c, m, n, ld=n + 3, offset=1, batch_stride=m * (n + 3))
    kb.gemm(c_mat, a_mat.T if trans_a else a_mat, b_mat.T if trans_b else b_mat,
            alpha=0.5, beta=-2.0, batch=batch)  # fmt: skip
    assert_close(c, want, f"sgemm transA={trans_a} transB={trans_b} m,n,k={m},{n},{k}")


@pytest.mark.parametrize("offset", [0, 4, 2], ids=["aligned", "aligned-offset", "misaligned"])
@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_kernel_16_byte_loads(kb, trans_a, trans_b, offset):
    """Rows padded to a multiple of 4 floats let the kernel copy runs of four with one
    16-byte load: with sizes that cut runs at the matrix's edges (K = 37, M = 70,
    N = 130), and with a start that is not a multiple of 16 bytes (scalar loads).
    On cuda-emu a misaligned 16-byte access fails the launch, as on a GPU."""
    rng = np.random.default_rng(11)
    m, n, k = 70, 130, 37

    def padded(rows, cols):  # rows x cols inside rows x (cols rounded up to 4), at `offset`
        ld = -(-cols // 4) * 4
        flat = np.zeros(offset + rows * ld, np.float32)
        flat[offset:].reshape(rows, ld)[:, :cols] = rand(rng, rows, cols)
        assert flat.ctypes.data % 16 == 0  # so that offset 0 and 4 give aligned rows
        return flat, Matrix(dev(kb, flat), rows, cols, ld=ld, offset=offset)

    def value(flat, mat):
        return flat[offset:].reshape(mat.rows, mat.ld)[:, : mat.cols]

    a_flat, a_mat = padded(*((k, m) if trans_a else (m, k)))
    b_flat, b_mat = padded(*((n, k) if trans_b else (k, n)))
    op_a, op_b = value(a_flat, a_mat), value(b_flat, b_mat)
    want = (op_a.T if trans_a else op_a) @ (op_b.T if trans_b else op_b)
    c = dev(kb, np.zeros((m, n), np.float32))
    kb.gemm(Matrix(c, m, n), a_mat.T if trans_a else a_mat, b_mat.T if trans_b else b_mat)
    assert_close(c, want, f"sgemm transA={trans_a} transB={trans_b} offset={offset}")


@pytest.mark.parametrize("k", [40, 37, 9], ids=["even-slices", "shorter-last-slice", "no-split"])
@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm_split_k(kb, trans_a, trans_b, k, monkeypatch):
    """A small C with a long K is cut into K slices summed at the end (split-K): the
    same product, with transposes, alpha/beta, offsets and ld > cols."""
    monkeypatch.setattr(gemm_glue, "SPLIT_K_MIN_SLICE", 10)  # tiny K, several slices
    slices, split = [], gemm_glue._gemm_split_k
    monkeypatch.setattr(gemm_glue, "_gemm_split_k", lambda *a: slices.append(a[-1]) or split(*a))
    rng = np.random.default_rng(9)
    m, n = 5, 7
    a = rand(rng, *((k, m) if trans_a else (m, k)))
    b = rand(rng, *((n, k) if trans_b else (k, n)))
    c0 = rand(rng, m, n + 3)
    want = c0.copy()
    want[:, 2 : n + 2] = 0.5 * (a.T if trans_a else a) @ (b.T if trans_b else b)
    want[:, 2 : n + 2] -= 2.0 * c0[:, 2 : n + 2]
    c = dev(kb, c0)
    a_mat, b_mat = Matrix(dev(kb, a), *a.shape), Matrix(dev(kb, b), *b.shape)
    kb.gemm(Matrix(c, m, n, ld=n + 3, offset=2), a_mat.T if trans_a else a_mat,
            b_mat.T if trans_b else b_mat, alpha=0.5, beta=-2.0)  # fmt: skip
    assert_close(c, want, f"split-K sgemm transA={trans_a} transB={trans_b} k={k}")
    assert slices == {40: [4], 37: [3], 9: []}[k]  # 4 x 10; 13 + 13 + 11; K too short


@pytest.mark.parametrize("trans_a", [0, 1])
def test_gemm_kernel_beta_zero_does_not_read_c(kb, trans_a):
    """beta == 0: C is only written (NaN garbage in C must not leak into the result)."""
    rng = np.random.default_rng(8)
    m, n, k = 70, 66, 18
    a = rand(rng, *((k, m) if trans_a else (m, k)))
    b = rand(rng, k, n)
    c = dev(kb, np.full((m, n), np.nan, dtype=np.float32))
    a_mat = Matrix(dev(kb, a), *a.shape)
    kb.gemm(Matrix(c, m, n), a_mat.T if trans_a else a_mat, Matrix(dev(kb, b), k, n))
    assert_close(c, (a.T if trans_a else a) @ b, "sgemm beta=0 over NaN")


def test_matrix_records_say_where_a_matrix_lies():
    """A Matrix is (array, rows, cols, ld, offset, batch stride, transposed); gemm checks
    that the three records chain before anything is launched."""
    buf = np.zeros(40, np.float32)
    band = Matrix(buf, 2, 6, ld=8, offset=1)
    assert band.shape == (2, 6) and band.T.shape == (6, 2) and band.T.T == band
    halves = band.column_slices(3)  # matrix z = columns 3z .. 3z+2
    assert (halves.cols, halves.ld, halves.batch_stride, halves.offset) == (3, 8, 3, 1)
    tail = band.column_range(4, 2)
    assert (tail.cols, tail.ld, tail.offset) == (2, 8, 5)
    kb = cuda_glue.KernelBackend("test", np, module_loader=None)
    with pytest.raises(ValueError, match=r"gemm: shapes do not chain: c \(2, 2\) = a \(2, 6\) · b \(2, 2\)"):
        kb.gemm(Matrix(buf, 2, 2), band, Matrix(buf, 2, 2))


# ----------------------------------------------------------------- errors


def test_float64_is_refused_naming_the_op():
    kb = _backend("cuda-emu")
    x64 = np.zeros((1, 1, 4, 4))
    w32 = np.zeros((1, 1, 3, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="conv2d.*float32.*float64"):
        kb.conv2d(x64, w32, (1, 1), (0, 0), (1, 1))
    with pytest.raises(TypeError, match="max_pool2d"):
        kb.max_pool2d(x64, (2, 2), (2, 2), (0, 0))
    with pytest.raises(TypeError, match="gram"):
        kb.gram(x64)
    with pytest.raises(TypeError, match="avg_pool2d_grad"):
        kb.avg_pool2d_grad(x64, (8, 8), (2, 2), (2, 2), (0, 0))


def test_cuda_without_cupy_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    ok, reason = cuda_glue.cuda_available()
    assert not ok and "CuPy is not installed" in reason
    with pytest.raises(RuntimeError, match=r"cuda.*pip install.*cupy-cuda1[23]x"):
        cuda_glue.make_cuda_backend()


def test_kernel_folder_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIDL_KERNELS", str(tmp_path))
    assert paths.kernels_dir() == tmp_path
    monkeypatch.delenv("MINIDL_KERNELS")
    assert (paths.kernels_dir() / "gemm.cu").is_file()


def test_kernel_folder_of_a_plain_install(monkeypatch, tmp_path):
    """Outside a source checkout, the kernels come from <prefix>/share/minidl/kernels,
    where pyproject.toml's data-files put them."""
    monkeypatch.delenv("MINIDL_KERNELS", raising=False)
    monkeypatch.setattr(paths, "CHECKOUT_KERNELS", tmp_path / "no-checkout" / "kernels")
    assert paths.kernels_dir() == Path(sys.prefix) / "share" / "minidl" / "kernels"


def test_a_kernel_edited_while_python_runs_is_recompiled(monkeypatch, tmp_path):
    """A student changes a kernel and calls again, in the same process: the change
    shows, and the launch follows a tile size changed in the .cu file."""
    import shutil

    reason = skip_reason("cuda-emu")
    if reason:
        pytest.skip(reason)
    folder = tmp_path / "kernels"
    shutil.copytree(paths.kernels_dir(), folder)
    monkeypatch.setenv("MINIDL_KERNELS", str(folder))
    kb = cuda_glue.make_emulated_backend()
    x = rand(np.random.default_rng(5), 2, 21, 4, 3)  # 21 channels: several 16- or 8-tiles

    pool = folder / "pool.cu"
    ones = np.ones((1, 1, 2, 2), np.float32)
    assert kb.avg_pool2d(ones, (2, 2), (2, 2), (0, 0)).item() == 1.0
    pool.write_text(pool.read_text().replace("y[t] = sum /", "y[t] = 100.0f + sum /"))
    assert kb.avg_pool2d(ones, (2, 2), (2, 2), (0, 0)).item() == 101.0

    gram = folder / "gram.cu"
    gram.write_text(gram.read_text().replace("#define GRAM_TILE 16", "#define GRAM_TILE 8"))
    assert_close(kb.gram(x), CPU.gram(x), "gram with 8x8 tiles")

    # gemm.cu's header invites changing its tile sizes: 64 x 128 tiles, steps of 32
    gemm = folder / "gemm.cu"
    source = re.sub(r"(#define GEMM_TILE_N\s+)\d+", r"\g<1>128", gemm.read_text())
    gemm.write_text(re.sub(r"(#define GEMM_BK\s+)\d+", r"\g<1>32", source))
    assert kb.runtime.compiled("gemm.cu").define("GEMM_TILE_N") == 128
    a, b = rand(np.random.default_rng(6), 70, 45), rand(np.random.default_rng(7), 45, 150)
    c = np.zeros((70, 150), np.float32)
    kb.gemm(Matrix(c, 70, 150), Matrix(a, 70, 45), Matrix(b, 45, 150))
    assert_close(c, a @ b, "gemm with 64 x 128 tiles and steps of 32")


@pytest.mark.parametrize("nan_at", [0, 1, 3])
def test_max_pool_passes_nan_through_wherever_it_is(kb, nan_at):
    x = np.array([1.0, 5.0, 3.0, 2.0], np.float32)
    x[nan_at] = np.nan
    x = x.reshape(1, 1, 2, 2)
    for backend, data in ((CPU, x), (kb, dev(kb, x))):
        y, idx = backend.max_pool2d(data, (2, 2), (2, 2), (0, 0))
        assert np.isnan(host(y).item()) and host(idx).item() == nan_at, backend


def test_an_empty_batch_gives_empty_results(kb):
    x, w = np.ones((0, 3, 8, 8), np.float32), np.ones((4, 3, 3, 3), np.float32)
    gy = np.ones((0, 4, 6, 6), np.float32)
    one, zero = (1, 1), (0, 0)
    assert host(kb.conv2d(dev(kb, x), dev(kb, w), one, zero, one)).shape == (0, 4, 6, 6)
    assert host(kb.conv2d_grad_input(dev(kb, gy), dev(kb, w), (8, 8), one, zero, one)).shape == (0, 3, 8, 8)
    gw = host(kb.conv2d_grad_weight(dev(kb, x), dev(kb, gy), (3, 3), one, zero, one))
    np.testing.assert_array_equal(gw, np.zeros((4, 3, 3, 3)))
