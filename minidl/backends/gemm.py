"""GEMM on the kernel devices: C = alpha·op(A)·op(B) + beta·C, batched, on flat buffers.

Every matrix product of the cuda backend -- the convolutions' ``y = w · col``, the
Gram gradient -- is one call of :func:`gemm` on three :class:`Matrix` records.
A record says where a matrix lies inside a flat array, BLAS-style, so a product can
read a band of rows of one image of an NCHW tensor without copying it out.

The product runs ``kernels/gemm.cu`` (``sgemm``), or, with the environment variable
``MINIDL_GEMM=cublas``, ``xp.matmul`` (cuBLAS on a GPU, NumPy's BLAS in the
emulator) on strided views, to compare the two.

**Split-K.**  The kernel gives each block one tile of C, so a small C (few tiles)
with a long inner dimension K -- a weight gradient (C_out x C_in·9, summed over every
pixel), or a deep layer at batch 1 (512 x 196 at 224 px) -- keeps only a few of a
GPU's 132 multiprocessors busy, each walking all of K alone.  Then :func:`gemm`
cuts K into slices, computes one partial product per slice in a single batched
launch (the slices are the batch), and adds the partials up:
``C = alpha·Σ_s A[:, slice s]·B[slice s, :] + beta·C``.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from minidl.backends.kernel_runtime import i32

#: Split-K: aim for at least this many blocks in flight (about two per multiprocessor
#: of a large GPU), and give each slice of K at least SPLIT_K_MIN_SLICE terms.
SPLIT_K_TARGET_BLOCKS = 256
SPLIT_K_MIN_SLICE = 256


@dataclasses.dataclass(frozen=True)
class Matrix:
    """A ``rows x cols`` row-major matrix inside the flat buffer ``array``.

    Element (r, c) of matrix z of a batch is
    ``array.flat[offset + z*batch_stride + r*ld + c]``; ``ld`` (the leading
    dimension, elements from one row to the next) defaults to ``cols``, and a
    ``batch_stride`` of 0 uses the same matrix for every z.  ``transposed``
    makes the product use the matrix's transpose (``m.T``).
    """

    array: object
    rows: int
    cols: int
    ld: int | None = None
    offset: int = 0
    batch_stride: int = 0
    transposed: bool = False

    @property
    def leading(self) -> int:
        return self.cols if self.ld is None else self.ld

    @property
    def T(self) -> Matrix:
        return dataclasses.replace(self, transposed=not self.transposed)

    @property
    def shape(self) -> tuple[int, int]:
        """The shape the product sees: (cols, rows) when transposed."""
        return (self.cols, self.rows) if self.transposed else (self.rows, self.cols)

    def column_range(self, start: int, count: int) -> Matrix:
        """Columns start .. start+count-1 of this matrix."""
        return dataclasses.replace(self, cols=count, ld=self.leading, offset=self.offset + start)

    def column_slices(self, width: int) -> Matrix:
        """A batch of consecutive ``width``-column slices: matrix z is columns z*width .. ."""
        return dataclasses.replace(self, cols=width, ld=self.leading, batch_stride=width)

    def row_range(self, start: int, count: int) -> Matrix:
        """Rows start .. start+count-1 of this matrix."""
        return dataclasses.replace(
            self, rows=count, ld=self.leading, offset=self.offset + start * self.leading
        )

    def row_slices(self, height: int) -> Matrix:
        """A batch of consecutive ``height``-row slices: matrix z is rows z*height .. ."""
        return dataclasses.replace(
            self, rows=height, ld=self.leading, batch_stride=height * self.leading
        )


def gemm(runtime, xp, c: Matrix, a: Matrix, b: Matrix, alpha=1.0, beta=0.0, batch=1) -> None:
    """c[z] = alpha·a[z]·b[z] + beta·c[z] for z < batch (``a``, ``b`` maybe transposed)."""
    (m, k), (k_b, n) = a.shape, b.shape
    if k != k_b or c.shape != (m, n) or c.transposed:
        raise ValueError(f"gemm: shapes do not chain: c {c.shape} = a {a.shape} · b {b.shape}")
    if m <= 0 or n <= 0 or batch <= 0:
        return
    if os.environ.get("MINIDL_GEMM", "").strip().lower() == "cublas":
        _gemm_xp(xp, c, a, b, alpha, beta, batch)
        return
    compiled = runtime.compiled("gemm.cu")
    blocks = math.ceil(m / compiled.define("GEMM_TILE_M")) * math.ceil(n / compiled.define("GEMM_TILE_N"))
    slices = split_k_slices(blocks, k) if batch == 1 else 1
    if slices > 1:
        _gemm_split_k(compiled, xp, c, a, b, alpha, beta, slices)
    else:
        _launch_sgemm(compiled, c, a, b, alpha, beta, batch)


def split_k_slices(blocks: int, k: int) -> int:
    """Into how many slices to cut a sum of ``k`` terms computed by ``blocks`` blocks:
    enough to reach SPLIT_K_TARGET_BLOCKS, none shorter than SPLIT_K_MIN_SLICE (1: no split)."""
    if blocks >= SPLIT_K_TARGET_BLOCKS:
        return 1
    return max(1, min(math.ceil(SPLIT_K_TARGET_BLOCKS / blocks), k // SPLIT_K_MIN_SLICE))


def _launch_sgemm(compiled, c: Matrix, a: Matrix, b: Matrix, alpha, beta, batch) -> None:
    """One launch of ``sgemm`` from ``compiled`` (kernels/gemm.cu): a block per tile of C,
    per matrix z."""
    (m, k), n = a.shape, b.shape[1]
    tile_m, tile_n = compiled.define("GEMM_TILE_M"), compiled.define("GEMM_TILE_N")
    threads = compiled.define("GEMM_THREADS")
    grid = (math.ceil(n / tile_n), math.ceil(m / tile_m), batch)

    def place(x: Matrix) -> tuple:
        return (x.array, *i32(x.offset, x.leading, x.batch_stride))

    args = (
        *i32(a.transposed, b.transposed, m, n, k), np.float32(alpha),
        *place(a), *place(b), np.float32(beta), *place(c),
    )  # fmt: skip
    compiled.function("sgemm")(grid, (threads, threads, 1), args)


def _gemm_split_k(compiled, xp, c: Matrix, a: Matrix, b: Matrix, alpha, beta, slices) -> None:
    """c = alpha·a·b + beta·c with K cut into ``slices`` parts (one product, no batch)."""
    (m, k), n = a.shape, b.shape[1]
    step = math.ceil(k / slices)  # every slice `step` long but the last
    slices, whole = math.ceil(k / step), k // step

    # K runs along the columns of op(a) and the rows of op(b); stored, that is the
    # other way round for a transposed matrix.
    def k_slices(x: Matrix, k_in_columns: bool) -> Matrix:
        return x.column_slices(step) if k_in_columns else x.row_slices(step)

    def k_rest(x: Matrix, k_in_columns: bool) -> Matrix:
        start = whole * step
        return x.column_range(start, k - start) if k_in_columns else x.row_range(start, k - start)

    partial = xp.empty((slices, m, n), dtype=np.float32)
    parts = Matrix(partial, m, n, batch_stride=m * n)
    a_cols, b_cols = not a.transposed, b.transposed
    _launch_sgemm(compiled, parts, k_slices(a, a_cols), k_slices(b, b_cols), 1.0, 0.0, whole)
    if whole < slices:  # the shorter last slice
        last = dataclasses.replace(parts, offset=whole * m * n)
        _launch_sgemm(compiled, last, k_rest(a, a_cols), k_rest(b, b_cols), 1.0, 0.0, 1)
    _store(_view(xp, c, 1)[0], partial.sum(axis=0), alpha, beta)


def _view(xp, x: Matrix, batch: int):
    """The (batch, rows, cols) strided view of the matrices ``x`` describes (op(x))."""
    flat = x.array.reshape(-1)[x.offset :]
    s = flat.itemsize
    stored = xp.lib.stride_tricks.as_strided(
        flat, shape=(batch, x.rows, x.cols), strides=(x.batch_stride * s, x.leading * s, s)
    )
    return stored.transpose(0, 2, 1) if x.transposed else stored


def _gemm_xp(xp, c: Matrix, a: Matrix, b: Matrix, alpha, beta, batch) -> None:
    """The same product with ``xp.matmul`` (cuBLAS / NumPy's BLAS) on strided views."""
    _store(_view(xp, c, batch), xp.matmul(_view(xp, a, batch), _view(xp, b, batch)), alpha, beta)


def _store(out, product, alpha, beta) -> None:
    """out = alpha·product + beta·out, in place (BLAS convention: with beta == 0, out
    is not read, so garbage or NaN in it does not leak into the result)."""
    if alpha != 1.0:
        product *= np.float32(alpha)
    if beta != 0.0:
        product += np.float32(beta) * out
    out[...] = product
