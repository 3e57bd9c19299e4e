"""Launch glue for the hand-written kernels in ``kernels/*.cu`` (devices ``"cuda"`` and ``"cuda-emu"``).

This file is written once and serves two devices.  :class:`KernelBackend` takes

* ``xp`` -- the array module: ``cupy`` on a GPU, ``numpy`` for the emulator, and
* ``module_loader`` -- a function ``paths -> module`` whose ``module.get_function(name)``
  returns a callable ``kernel(grid, block, args)``: ``cupy.RawModule`` on a GPU,
  :class:`minidl.backends.emulated.EmulatedModule` on the CPU.

Everything else -- output shapes, grid and block sizes, argument packing, splitting
big convolutions into chunks -- is the same code for both.  What a method does:

=====================  ==========================================================
conv2d                 im2col (unfold patches into columns), then one GEMM
conv2d_grad_input      GEMM with the transposed weights, then col2im (gather)
conv2d_grad_weight     im2col, then GEMM of gy with the transposed columns
max/avg pooling        one thread per output (forward), per input (backward)
gram                   symmetric tiled F·Fᵀ; gram_grad = two GEMMs
=====================  ==========================================================

Kernel arguments must have the exact C type of the kernel signature: ``np.int32``
for ``int``, ``np.float32`` for ``float``, ``np.int64`` for ``long long``.  (cupy
would pass a Python ``int`` as 64 bits, which an ``int`` parameter misreads.)

Settings you can change (module attributes, read at call time):

* ``COLUMN_BUDGET_BYTES`` -- the most memory one im2col column buffer may take;
  larger convolutions are done a few images, or a few output rows, at a time.
* environment ``MINIDL_GEMM=cublas`` -- use ``xp.matmul`` (cuBLAS on a GPU, BLAS in
  NumPy) instead of ``kernels/gemm.cu``, to compare the two.
* environment ``MINIDL_KERNELS`` -- the folder with the ``.cu`` files (default:
  ``kernels/`` at the repository root).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from minidl.paths import kernels_dir

#: Upper bound for the im2col column buffer of one chunk (bytes).
COLUMN_BUDGET_BYTES = 64 * 2**20

#: Threads per block of the 1-D (grid-stride loop) kernels.
THREADS_PER_BLOCK = 256
#: Most blocks launched for a 1-D kernel; the grid-stride loop covers the rest.
MAX_BLOCKS = 65535

# Tile sizes are not repeated here: the launches read them from the kernels' own
# ``#define``s (GEMM_TILE and GEMM_THREADS in gemm.cu, GRAM_TILE in gram.cu), so a
# student who changes a tile size in the .cu file gets matching grids and blocks.

#: Split-K (conv2d_grad_weight): aim for at least this many GEMM blocks in flight, about
#: two per multiprocessor of a large GPU, and give each slice of the sum at least
#: SPLIT_K_MIN_SLICE terms.
SPLIT_K_TARGET_BLOCKS = 256
SPLIT_K_MIN_SLICE = 256

#: Which file defines which kernel.
KERNEL_FILES = {
    "im2col": "im2col.cu",
    "col2im": "im2col.cu",
    "sgemm": "gemm.cu",
    "max_pool2d_forward": "pool.cu",
    "max_pool2d_backward": "pool.cu",
    "max_unpool2d_forward": "pool.cu",
    "max_unpool2d_backward": "pool.cu",
    "avg_pool2d_forward": "pool.cu",
    "avg_pool2d_backward": "pool.cu",
    "gram": "gram.cu",
}

INSTALL_HINT = (
    "install the CuPy wheel for your CUDA version: in the minidl checkout, "
    "`pip install -e \".[gpu]\"` (cupy-cuda12x, CUDA 12) or `pip install -e \".[gpu13]\"` "
    "(cupy-cuda13x, CUDA 13); `nvidia-smi` shows the CUDA version of the driver"
)

_INT32_MAX = 2**31 - 1


def _i32(*values) -> tuple:
    """Python ints -> np.int32 kernel arguments (C ``int``)."""
    return tuple(np.int32(v) for v in values)


def _pair(v) -> tuple[int, int]:
    return int(v[0]), int(v[1])


def _out_size(size, kernel, stride, padding, dilation=1) -> int:
    """PyTorch's output size: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _conv_out_hw(input_hw, kernel, stride, padding, dilation) -> tuple[int, int]:
    """_out_size for both axes of a convolution."""
    return tuple(_out_size(*args) for args in zip(input_hw, kernel, stride, padding, dilation))


class CompiledFile:
    """One kernel file as compiled: its module, its kernels and its ``#define``d numbers
    (looked up once each)."""

    def __init__(self, module, source: str):
        self.module, self.source = module, source
        self.functions: dict = {}
        self.defines: dict = {}

    def function(self, name: str):
        if name not in self.functions:
            self.functions[name] = self.module.get_function(name)
        return self.functions[name]

    def define(self, macro: str) -> int:
        """The number of ``#define macro <number>`` in the file (a tile size)."""
        if macro not in self.defines:
            found = re.search(rf"^[ \t]*#define[ \t]+{macro}[ \t]+(\d+)\b", self.source, re.MULTILINE)
            if found is None:
                raise RuntimeError(f"a kernel file lacks '#define {macro} <number>', which the launch needs")
            self.defines[macro] = int(found.group(1))
        return self.defines[macro]


# Compiled files, shared by every backend of this process.  The key holds the
# modification times of the file and of the emulator's header, so a kernel edited
# while Python runs is recompiled at its next launch (two stat calls per launch).
_COMPILED: dict = {}


class KernelBackend:
    """Every backend method, implemented by launching the kernels in ``kernels/``."""

    def __init__(self, name: str, xp, module_loader, *, threads_per_block=None, max_blocks=None):
        self.name = name
        self.xp = xp
        self._load = module_loader
        self._threads = threads_per_block
        self._max_blocks = max_blocks

    def __repr__(self) -> str:
        return f"KernelBackend({self.name!r})"

    # ------------------------------------------------------------ kernel plumbing

    def _compiled(self, file: str) -> CompiledFile:
        """``kernels/<file>``, compiled on first use and again after each edit."""
        folder = kernels_dir()
        path = os.path.join(folder, file)  # plain strings: this runs at every launch
        try:
            stamp = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{self.name}: kernel source {path} not found (set MINIDL_KERNELS to the "
                "folder holding the .cu files)"
            ) from None
        try:
            shim_stamp = os.stat(os.path.join(folder, "cuda_emu.h")).st_mtime_ns
        except FileNotFoundError:
            shim_stamp = 0
        key = (self.name, id(self._load), path, stamp, shim_stamp)
        compiled = _COMPILED.get(key)
        if compiled is None:
            compiled = _COMPILED[key] = CompiledFile(self._load([Path(path)]), Path(path).read_text())
        return compiled

    def _kernel(self, name: str):
        """The kernel called ``name`` (see :meth:`_compiled`)."""
        return self._compiled(KERNEL_FILES[name]).function(name)

    def _launch_1d(self, name: str, total: int, args: tuple) -> None:
        """Launch a grid-stride-loop kernel over ``total`` items (1-D grid and blocks)."""
        if total <= 0:
            return
        threads = self._threads or THREADS_PER_BLOCK
        blocks = min(math.ceil(total / threads), self._max_blocks or MAX_BLOCKS)
        self._kernel(name)((blocks,), (threads,), args)

    def _float_input(self, op: str, arg: str, a):
        """Check that ``a`` is a float32 array of our array module; return it C-contiguous."""
        xp = self.xp
        if not isinstance(a, xp.ndarray):
            raise TypeError(
                f"{op}: {arg} must be a {xp.__name__} array on device {self.name!r}, "
                f"got {type(a).__module__}.{type(a).__name__}"
            )
        if a.dtype != np.float32:
            raise TypeError(
                f"{op}: the {self.name} kernels compute in float32 only, but {arg} has dtype "
                f"{a.dtype} (shape {tuple(a.shape)}); convert it with .astype('float32') or use "
                "the cpu device for float64"
            )
        return xp.ascontiguousarray(a)

    def _index_input(self, op: str, arg: str, a):
        """Check that ``a`` holds integer switches; return it as C-contiguous int64."""
        xp = self.xp
        if not isinstance(a, xp.ndarray) or a.dtype.kind not in "iu":
            what = getattr(a, "dtype", type(a).__name__)
            raise TypeError(f"{op}: {arg} must be an integer {xp.__name__} array, got {what}")
        return xp.ascontiguousarray(a, dtype=np.int64)

    def _rank4(self, op: str, arg: str, a) -> None:
        if a.ndim != 4:
            raise ValueError(f"{op}: {arg} must be 4-D (N, C, H, W), got shape {tuple(a.shape)}")

    @staticmethod
    def _fits_int32(op: str, *sizes) -> None:
        """Kernels index with C ``int``: every array must have < 2**31 elements, less a
        grid's worth of threads, so that the grid-stride loop's ``t += threads`` cannot
        overflow past its last item."""
        limit = _INT32_MAX - MAX_BLOCKS * THREADS_PER_BLOCK
        for size in sizes:
            if size > limit:
                raise ValueError(
                    f"{op}: an array of {size} elements is too big for the kernels' 32-bit "
                    "indices; use a smaller batch"
                )

    # ------------------------------------------------------------------ GEMM

    def _gemm(self, trans_a, trans_b, m, n, k, alpha, a, off_a, lda, stride_a,
              b, off_b, ldb, stride_b, beta, c, off_c, ldc, stride_c, batch=1):  # fmt: skip
        """C[z] = alpha·op(A[z])·op(B[z]) + beta·C[z] for z < batch (see gemm.cu).

        Matrices are given BLAS-style inside flat buffers: matrix z of X starts at
        ``X.flat[off_x + z*stride_x]`` and row r at ``ld_x`` elements further per row.
        """
        if m <= 0 or n <= 0 or batch <= 0:
            return
        if os.environ.get("MINIDL_GEMM", "").strip().lower() == "cublas":
            self._gemm_xp(trans_a, trans_b, m, n, k, alpha, a, off_a, lda, stride_a,
                          b, off_b, ldb, stride_b, beta, c, off_c, ldc, stride_c, batch)  # fmt: skip
            return
        gemm = self._compiled("gemm.cu")
        tile, threads = gemm.define("GEMM_TILE"), gemm.define("GEMM_THREADS")
        grid = (math.ceil(n / tile), math.ceil(m / tile), batch)
        args = (
            *_i32(trans_a, trans_b, m, n, k), np.float32(alpha),
            a, *_i32(off_a, lda, stride_a),
            b, *_i32(off_b, ldb, stride_b),
            np.float32(beta),
            c, *_i32(off_c, ldc, stride_c),
        )  # fmt: skip
        gemm.function("sgemm")(grid, (threads, threads, 1), args)

    def _gemm_xp(self, trans_a, trans_b, m, n, k, alpha, a, off_a, lda, stride_a,
                 b, off_b, ldb, stride_b, beta, c, off_c, ldc, stride_c, batch):  # fmt: skip
        """The same product with ``xp.matmul`` (cuBLAS / NumPy's BLAS) on strided views."""
        as_strided = self.xp.lib.stride_tricks.as_strided

        def view(buf, off, rows, cols, ld, stride):
            flat = buf.reshape(-1)[off:]
            s = flat.itemsize
            return as_strided(flat, shape=(batch, rows, cols), strides=(stride * s, ld * s, s))

        op_a = view(a, off_a, k, m, lda, stride_a).transpose(0, 2, 1) if trans_a else \
            view(a, off_a, m, k, lda, stride_a)  # fmt: skip
        op_b = view(b, off_b, n, k, ldb, stride_b).transpose(0, 2, 1) if trans_b else \
            view(b, off_b, k, n, ldb, stride_b)  # fmt: skip
        out = view(c, off_c, m, n, ldc, stride_c)
        product = self.xp.matmul(op_a, op_b)
        if alpha != 1.0:
            product *= np.float32(alpha)
        if beta != 0.0:
            product += np.float32(beta) * out
        out[...] = product

    # ---------------------------------------------------------- convolution

    def _chunks(self, n_images: int, k: int, oh: int, ow: int):
        """Split the im2col work so one column buffer stays under COLUMN_BUDGET_BYTES.

        Yields ``(n0, nb, oh0, ohn)``: images n0..n0+nb-1, output rows oh0..oh0+ohn-1.
        Whole images are grouped while one image fits; otherwise one image at a time,
        a band of output rows at a time.
        """
        per_image = k * oh * ow * 4  # float32 bytes of one image's columns
        if per_image <= COLUMN_BUDGET_BYTES:
            # (at most 65535 images: the batched GEMM puts them in gridDim.z)
            nb = max(1, min(n_images, COLUMN_BUDGET_BYTES // per_image, 65535))
            for n0 in range(0, n_images, nb):
                yield n0, min(nb, n_images - n0), 0, oh
        else:
            rows = max(1, COLUMN_BUDGET_BYTES // (k * ow * 4))
            for n0 in range(n_images):
                for oh0 in range(0, oh, rows):
                    yield n0, 1, oh0, min(rows, oh - oh0)

    def _column_buffer(self, chunks, k: int, ow: int):
        """One flat float32 buffer big enough for the largest chunk's columns."""
        size = max((nb * k * ohn * ow for _, nb, _, ohn in chunks), default=0)  # 0: no images
        return self.xp.empty(size, dtype=np.float32)

    def _im2col_args(self, n0, nb, c, h, w, kernel, stride, padding, dilation, oh, ow, oh0, ohn):
        return _i32(n0, nb, c, h, w, *kernel, *stride, *padding, *dilation, oh, ow, oh0, ohn)

    def conv2d(self, x, w, stride, padding, dilation):
        op = "conv2d"
        x, w = self._float_input(op, "x", x), self._float_input(op, "w", w)
        self._rank4(op, "x", x)
        self._rank4(op, "w", w)
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        n, c, h, wd = x.shape
        c_out, c_in, kh, kw = w.shape
        if c_in != c:
            raise ValueError(f"{op}: x has {c} channels but w {tuple(w.shape)} expects {c_in}")
        oh, ow = _conv_out_hw((h, wd), (kh, kw), stride, padding, dilation)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{op}: output size {oh}x{ow} < 1 for x {tuple(x.shape)}, w {tuple(w.shape)}"
            )
        y = self.xp.empty((n, c_out, oh, ow), dtype=np.float32)
        self._fits_int32(op, x.size, y.size)
        k = c * kh * kw
        chunks = list(self._chunks(n, k, oh, ow))
        col = self._column_buffer(chunks, k, ow)
        for n0, nb, oh0, ohn in chunks:
            ncol = ohn * ow  # columns per image in this chunk
            self._launch_1d("im2col", nb * k * ncol, (x, col, *self._im2col_args(
                n0, nb, c, h, wd, (kh, kw), stride, padding, dilation, oh, ow, oh0, ohn)))  # fmt: skip
            # y[n0+b][:, rows oh0..] (C_out x ncol, row stride OH*OW) = w (C_out x K) · col[b] (K x ncol)
            self._gemm(0, 0, c_out, ncol, k, 1.0,
                       w, 0, k, 0,
                       col, 0, ncol, k * ncol,
                       0.0, y, n0 * c_out * oh * ow + oh0 * ow, oh * ow, c_out * oh * ow,
                       batch=nb)  # fmt: skip
        return y

    def conv2d_grad_input(self, gy, w, input_hw, stride, padding, dilation):
        op = "conv2d_grad_input"
        gy, w = self._float_input(op, "gy", gy), self._float_input(op, "w", w)
        self._rank4(op, "gy", gy)
        self._rank4(op, "w", w)
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        h, wd = _pair(input_hw)
        n, c_out, oh, ow = gy.shape
        c_out_w, c, kh, kw = w.shape
        if c_out_w != c_out:
            raise ValueError(f"{op}: gy has {c_out} channels but w {tuple(w.shape)} has {c_out_w}")
        expect = _conv_out_hw((h, wd), (kh, kw), stride, padding, dilation)
        if expect != (oh, ow):
            raise ValueError(
                f"{op}: input size {(h, wd)} gives a {expect} output, but gy is {tuple(gy.shape)}"
            )
        gx = self.xp.zeros((n, c, h, wd), dtype=np.float32)
        self._fits_int32(op, gx.size, gy.size)
        k = c * kh * kw
        chunks = list(self._chunks(n, k, oh, ow))
        col = self._column_buffer(chunks, k, ow)
        for n0, nb, oh0, ohn in chunks:
            ncol = ohn * ow  # columns per image in this chunk
            # col[b] (K x ncol) = wᵀ (K x C_out; w is stored C_out x K) · gy[n0+b][:, rows oh0..]
            self._gemm(1, 0, k, ncol, c_out, 1.0,
                       w, 0, k, 0,
                       gy, n0 * c_out * oh * ow + oh0 * ow, oh * ow, c_out * oh * ow,
                       0.0, col, 0, ncol, k * ncol,
                       batch=nb)  # fmt: skip
            # Each input pixel gathers the column entries it fed (adds into gx).
            self._launch_1d("col2im", nb * c * h * wd, (col, gx, *self._im2col_args(
                n0, nb, c, h, wd, (kh, kw), stride, padding, dilation, oh, ow, oh0, ohn)))  # fmt: skip
        return gx

    def conv2d_grad_weight(self, x, gy, kernel_hw, stride, padding, dilation):
        op = "conv2d_grad_weight"
        x, gy = self._float_input(op, "x", x), self._float_input(op, "gy", gy)
        self._rank4(op, "x", x)
        self._rank4(op, "gy", gy)
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        kh, kw = _pair(kernel_hw)
        n, c, h, wd = x.shape
        n_gy, c_out, oh, ow = gy.shape
        expect = _conv_out_hw((h, wd), (kh, kw), stride, padding, dilation)
        if n_gy != n or expect != (oh, ow):
            raise ValueError(
                f"{op}: x {tuple(x.shape)} with kernel {(kh, kw)} gives output {(n, *expect)}, "
                f"but gy is {tuple(gy.shape)}"
            )
        self._fits_int32(op, x.size, gy.size)
        k = c * kh * kw
        chunks = list(self._chunks(n, k, oh, ow))
        col = self._column_buffer(chunks, k, ow)
        # gw is a small matrix (C_out x K) but a long sum over every pixel of every
        # image: few output tiles, each walking a very long inner dimension, would
        # leave most of a GPU idle.  Split-K: cut the sum over a chunk's pixels into
        # `slices` pieces, computed in parallel as a batched GEMM into partial sums.
        tile = self._compiled("gemm.cu").define("GEMM_TILE")
        tiles = math.ceil(c_out / tile) * math.ceil(k / tile)
        max_cols = max((ohn * ow for _, _, _, ohn in chunks), default=0)
        slices = max(1, min(math.ceil(SPLIT_K_TARGET_BLOCKS / tiles), max_cols // SPLIT_K_MIN_SLICE))
        partial = self.xp.zeros((slices, c_out, k), dtype=np.float32)
        for n0, nb, oh0, ohn in chunks:
            ncol = ohn * ow  # columns per image in this chunk
            self._launch_1d("im2col", nb * k * ncol, (x, col, *self._im2col_args(
                n0, nb, c, h, wd, (kh, kw), stride, padding, dilation, oh, ow, oh0, ohn)))  # fmt: skip
            # partial[s] (C_out x K) += gy[n0+b][:, columns of slice s] · (those columns of col[b])ᵀ
            step = max(1, ncol // slices)  # the last slice also takes the remainder
            for b in range(nb):
                gy_at = (n0 + b) * c_out * oh * ow + oh0 * ow  # this image's rows oh0..
                col_at = b * k * ncol
                full = min(slices, ncol // step)
                self._gemm(0, 1, c_out, k, step, 1.0,
                           gy, gy_at, oh * ow, step,
                           col, col_at, ncol, step,
                           1.0, partial, 0, k, c_out * k, batch=full)  # fmt: skip
                done = full * step
                if done < ncol:
                    self._gemm(0, 1, c_out, k, ncol - done, 1.0,
                               gy, gy_at + done, oh * ow, 0,
                               col, col_at + done, ncol, 0,
                               1.0, partial, 0, k, 0)  # fmt: skip
        return partial.sum(axis=0).reshape(c_out, c, kh, kw)

    # ---------------------------------------------------------- max pooling

    def _pool_shapes(self, op, x, kernel, stride, padding):
        kernel, stride, padding = _pair(kernel), _pair(stride), _pair(padding)
        n, c, h, wd = x.shape
        oh = _out_size(h, kernel[0], stride[0], padding[0])
        ow = _out_size(wd, kernel[1], stride[1], padding[1])
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{op}: output size {oh}x{ow} < 1 for x {tuple(x.shape)}, kernel {kernel}, "
                f"stride {stride}, padding {padding}"
            )
        self._fits_int32(op, x.size, n * c * oh * ow)
        return (n, c, h, wd, oh, ow), kernel, stride, padding

    def max_pool2d(self, x, kernel, stride, padding):
        op = "max_pool2d"
        x = self._float_input(op, "x", x)
        self._rank4(op, "x", x)
        (n, c, h, wd, oh, ow), kernel, stride, padding = self._pool_shapes(
            op, x, kernel, stride, padding
        )
        y = self.xp.empty((n, c, oh, ow), dtype=np.float32)
        indices = self.xp.empty((n, c, oh, ow), dtype=np.int64)
        self._launch_1d("max_pool2d_forward", y.size,
                        (x, y, indices, *_i32(n * c, h, wd, oh, ow, *kernel, *stride, *padding)))  # fmt: skip
        return y, indices

    def _values_and_switches(self, op, name, values, indices):
        """Check a 4-D float32 array and max-pool switches of the same shape."""
        values = self._float_input(op, name, values)
        indices = self._index_input(op, "indices", indices)
        self._rank4(op, name, values)
        if indices.shape != values.shape:
            raise ValueError(
                f"{op}: indices {tuple(indices.shape)} and {name} {tuple(values.shape)} "
                "differ in shape"
            )
        return values, indices

    def max_pool2d_grad(self, gy, indices, input_hw, kernel, stride, padding):
        """Gradient of max pooling, in gather form (each input pixel sums its windows' gy)."""
        op = "max_pool2d_grad"
        gy, indices = self._values_and_switches(op, "gy", gy, indices)
        n, c, oh, ow = gy.shape
        h, wd = _pair(input_hw)
        gx = self.xp.empty((n, c, h, wd), dtype=np.float32)
        self._fits_int32(op, gx.size, gy.size)
        kernel, stride, padding = _pair(kernel), _pair(stride), _pair(padding)
        self._launch_1d("max_pool2d_backward", gx.size,
                        (gy, indices, gx, *_i32(n * c, h, wd, oh, ow, *kernel, *stride, *padding)))  # fmt: skip
        return gx

    def max_unpool2d(self, x, indices, output_hw):
        op = "max_unpool2d"
        x, indices = self._values_and_switches(op, "x", x, indices)
        n, c, h, wd = x.shape
        oh, ow = _pair(output_hw)
        y = self.xp.zeros((n, c, oh, ow), dtype=np.float32)
        self._fits_int32(op, x.size, y.size)
        self._launch_1d("max_unpool2d_forward", x.size,
                        (x, indices, y, *_i32(n * c, h * wd, oh * ow)))  # fmt: skip
        return y

    def max_unpool2d_grad(self, gy, indices):
        op = "max_unpool2d_grad"
        gy = self._float_input(op, "gy", gy)
        indices = self._index_input(op, "indices", indices)
        self._rank4(op, "gy", gy)
        self._rank4(op, "indices", indices)
        n, c, oh, ow = gy.shape
        if indices.shape[:2] != (n, c):
            raise ValueError(
                f"{op}: indices {tuple(indices.shape)} and gy {tuple(gy.shape)} differ in N, C"
            )
        h, wd = indices.shape[2:]
        gx = self.xp.empty(indices.shape, dtype=np.float32)
        self._fits_int32(op, gx.size, gy.size)
        self._launch_1d("max_unpool2d_backward", gx.size,
                        (gy, indices, gx, *_i32(n * c, h * wd, oh * ow)))  # fmt: skip
        return gx

    # ---------------------------------------------------------- average pooling

    def avg_pool2d(self, x, kernel, stride, padding):
        op = "avg_pool2d"
        x = self._float_input(op, "x", x)
        self._rank4(op, "x", x)
        (n, c, h, wd, oh, ow), kernel, stride, padding = self._pool_shapes(
            op, x, kernel, stride, padding
        )
        y = self.xp.empty((n, c, oh, ow), dtype=np.float32)
        self._launch_1d("avg_pool2d_forward", y.size,
                        (x, y, *_i32(n * c, h, wd, oh, ow, *kernel, *stride, *padding)))  # fmt: skip
        return y

    def avg_pool2d_grad(self, gy, input_hw, kernel, stride, padding):
        op = "avg_pool2d_grad"
        gy = self._float_input(op, "gy", gy)
        self._rank4(op, "gy", gy)
        kernel, stride, padding = _pair(kernel), _pair(stride), _pair(padding)
        n, c, oh, ow = gy.shape
        h, wd = _pair(input_hw)
        gx = self.xp.empty((n, c, h, wd), dtype=np.float32)
        self._fits_int32(op, gx.size, gy.size)
        self._launch_1d("avg_pool2d_backward", gx.size,
                        (gy, gx, *_i32(n * c, h, wd, oh, ow, *kernel, *stride, *padding)))  # fmt: skip
        return gx

    # ---------------------------------------------------------- Gram matrices

    def gram(self, x):
        op = "gram"
        x = self._float_input(op, "x", x)
        self._rank4(op, "x", x)
        n, c, h, wd = x.shape
        p = h * wd
        g = self.xp.empty((n, c, c), dtype=np.float32)
        self._fits_int32(op, x.size, g.size)
        if n == 0 or c == 0:
            return g
        gram = self._compiled("gram.cu")
        tile = gram.define("GRAM_TILE")
        tiles = math.ceil(c / tile)
        grid = (tiles * (tiles + 1) // 2, n, 1)  # lower-triangle tiles x images
        args = (x, g, *_i32(c, p), np.float32(1.0 / (c * p)))
        gram.function("gram")(grid, (tile, tile, 1), args)
        return g

    def gram_grad(self, g_gram, x):
        """gx[n] = (gG[n] + gG[n]ᵀ) · F / (C·H·W): two batched GEMMs, the second with op(A) = gGᵀ."""
        op = "gram_grad"
        g_gram = self._float_input(op, "gG", g_gram)
        x = self._float_input(op, "x", x)
        self._rank4(op, "x", x)
        n, c, h, wd = x.shape
        if tuple(g_gram.shape) != (n, c, c):
            raise ValueError(f"{op}: gG must have shape {(n, c, c)}, got {tuple(g_gram.shape)}")
        p = h * wd
        gx = self.xp.empty_like(x)
        self._fits_int32(op, x.size, g_gram.size)
        scale = 1.0 / (c * p)
        for trans_a, beta in ((0, 0.0), (1, 1.0)):  # gx = s·gG·F, then gx += s·gGᵀ·F
            self._gemm(trans_a, 0, c, p, c, scale,
                       g_gram, 0, c, c * c,
                       x, 0, p, c * p,
                       beta, gx, 0, p, c * p,
                       batch=n)  # fmt: skip
        return gx


# ---------------------------------------------------------------------- factories


def _import_cupy():
    import cupy  # optional dependency, imported on demand

    return cupy


def cuda_available() -> tuple[bool, str]:
    """(True, description) when CuPy and a CUDA GPU are usable, else (False, why not)."""
    try:
        cupy = _import_cupy()
    except ImportError as exc:
        return False, f"CuPy is not installed ({exc}); {INSTALL_HINT}"
    except Exception as exc:  # noqa: BLE001  # a broken install (wrong CUDA wheel, missing libraries)
        return False, f"CuPy failed to import ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001  # no driver, no device
        return False, f"CuPy {cupy.__version__} is installed but finds no CUDA GPU ({exc})"
    if count < 1:
        return False, f"CuPy {cupy.__version__} is installed but finds no CUDA GPU"
    try:
        props = cupy.cuda.runtime.getDeviceProperties(0)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        runtime = cupy.cuda.runtime.runtimeGetVersion()
        driver = cupy.cuda.runtime.driverGetVersion()

        def v(x):
            return f"{x // 1000}.{x % 1000 // 10}"

        return True, (
            f"CuPy {cupy.__version__}, CUDA runtime {v(runtime)}, driver {v(driver)}, "
            f"{count} GPU(s), GPU 0: {gpu}"
        )
    except Exception as exc:  # noqa: BLE001
        return False, f"CuPy {cupy.__version__} sees {count} GPU(s) but cannot query them ({exc})"


def _cupy_loader(paths):
    """Compile the .cu files with NVRTC through cupy.RawModule."""
    cupy = _import_cupy()
    code = "\n".join(Path(p).read_text() for p in paths)
    return cupy.RawModule(code=code, options=("-std=c++17",))


def make_cuda_backend() -> KernelBackend:
    """The ``"cuda"`` backend: CuPy arrays, kernels compiled by NVRTC (once per process)."""
    ok, reason = cuda_available()
    if not ok:
        raise RuntimeError(f"device 'cuda' is not available: {reason}")
    return KernelBackend("cuda", _import_cupy(), _cupy_loader)


def _emulated_loader(paths):
    from minidl.backends.emulated import EmulatedModule

    return EmulatedModule(list(paths))


def make_emulated_backend() -> KernelBackend:
    """The ``"cuda-emu"`` backend: NumPy arrays, the same kernels compiled by g++ for CPU threads."""
    return KernelBackend("cuda-emu", np, _emulated_loader)
