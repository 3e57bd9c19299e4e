"""GEMM on the kernel devices: C = alpha·op(A)·op(B) + beta·C, batched, on flat buffers.

Every matrix product of the cuda backend -- the convolutions' ``y = w · col``, the
Gram gradient -- is one call of :func:`gemm` on three :class:`Matrix` records.
A record says where a matrix lies inside a flat array, BLAS-style, so a product can
read a band of rows of one image of an NCHW tensor without copying it out.

The product runs ``kernels/gemm.cu`` (``sgemm``), or, with the environment variable
``MINIDL_GEMM=cublas``, ``xp.matmul`` (cuBLAS on a GPU, NumPy's BLAS in the
emulator) on strided views, to compare the two.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from minidl.backends.kernel_runtime import i32


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

    def columns(self, start: int, count: int) -> Matrix:
        """Columns start .. start+count-1 of this matrix."""
        return dataclasses.replace(self, cols=count, ld=self.leading, offset=self.offset + start)

    def column_slices(self, width: int) -> Matrix:
        """A batch of consecutive ``width``-column slices: matrix z is columns z*width .. ."""
        return dataclasses.replace(self, cols=width, ld=self.leading, batch_stride=width)


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
    tile, threads = compiled.define("GEMM_TILE"), compiled.define("GEMM_THREADS")
    grid = (math.ceil(n / tile), math.ceil(m / tile), batch)

    def place(x: Matrix) -> tuple:
        return (x.array, *i32(x.offset, x.leading, x.batch_stride))

    args = (
        *i32(a.transposed, b.transposed, m, n, k), np.float32(alpha),
        *place(a), *place(b), np.float32(beta), *place(c),
    )  # fmt: skip
    compiled.function("sgemm")(grid, (threads, threads, 1), args)


def _gemm_xp(xp, c: Matrix, a: Matrix, b: Matrix, alpha, beta, batch) -> None:
    """The same product with ``xp.matmul`` (cuBLAS / NumPy's BLAS) on strided views."""

    def view(x: Matrix):
        flat = x.array.reshape(-1)[x.offset :]
        s = flat.itemsize
        stored = xp.lib.stride_tricks.as_strided(
            flat, shape=(batch, x.rows, x.cols), strides=(x.batch_stride * s, x.leading * s, s)
        )
        return stored.transpose(0, 2, 1) if x.transposed else stored

    out = view(c)
    product = xp.matmul(view(a), view(b))
    if alpha != 1.0:
        product *= np.float32(alpha)
    if beta != 0.0:
        product += np.float32(beta) * out
    out[...] = product
