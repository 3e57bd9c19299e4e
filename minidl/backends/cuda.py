"""Launch glue for the hand-written kernels in ``kernels/*.cu`` (devices ``"cuda"`` and ``"cuda-emu"``).

This file is written once and serves two devices.  :class:`KernelBackend` takes

* ``xp`` -- the array module: ``cupy`` on a GPU, ``numpy`` for the emulator, and
* ``module_loader`` -- how kernel files are compiled: ``cupy.RawModule`` on a GPU,
  :class:`minidl.backends.emulated.EmulatedModule` on the CPU.  Compiling, caching
  and launching live in ``backends/kernel_runtime.py``; matrix products in
  ``backends/gemm.py``.

Everything else -- output shapes, grid and block sizes, argument packing, splitting
big convolutions into chunks -- is the same code for both.  What a method does:

=====================  ==========================================================
conv2d                 im2col (unfold patches into columns), then  y = w · col
                       (3x3 stride 1: Winograd, see backends/winograd_launch.py
                       and MINIDL_CONV in backends/winograd.py)
conv2d_grad_input      col = wᵀ · gy, then col2im (gather)
conv2d_grad_weight     im2col, then  gw = gy · colᵀ  (split-K)
im2col / col2im        F.unfold / F.fold: the im2col kernels alone
max/avg pooling        one thread per output (forward), per input (backward)
gram                   symmetric tiled F·Fᵀ (split over pixel slices when G is
                       small); gram_grad = two GEMMs
=====================  ==========================================================

Settings you can change (module attributes, read at call time):

* ``COLUMN_BUDGET_BYTES`` -- the most memory one im2col column buffer may take;
  larger convolutions are done a few images, or a few output rows, at a time.
* ``SPLIT_K_TARGET_BLOCKS`` / ``SPLIT_K_MIN_SLICE`` in ``backends/gemm.py`` -- when a
  small output with a long sum (a GEMM, a Gram matrix) is cut into slices.
* environment ``MINIDL_GEMM=cublas`` -- use ``xp.matmul`` (cuBLAS on a GPU, BLAS in
  NumPy) instead of ``kernels/gemm.cu``, to compare the two.
* environment ``MINIDL_KERNELS`` -- the folder with the ``.cu`` files (default:
  ``kernels/`` at the repository root).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from minidl.backends import winograd, winograd_launch
from minidl.backends.gemm import Matrix, gemm, split_k_slices
from minidl.backends.kernel_runtime import KernelRuntime, check_fits_int32, i32
from minidl.geometry import output_hw

#: Upper bound for the im2col column buffer of one chunk (bytes).
COLUMN_BUDGET_BYTES = 64 * 2**20

# Tile sizes are not repeated here: the launches read them from the kernels' own
# ``#define``s (GEMM_TILE_M, GEMM_TILE_N and GEMM_THREADS in gemm.cu, GRAM_TILE in gram.cu), so a
# student who changes a tile size in the .cu file gets matching grids and blocks.

INSTALL_HINT = (
    "install the CuPy wheel for your CUDA version: in the minidl checkout, "
    '`pip install -e ".[gpu]"` (cupy-cuda12x, CUDA 12) or `pip install -e ".[gpu13]"` '
    "(cupy-cuda13x, CUDA 13); `nvidia-smi` shows the CUDA version of the driver"
)


def _pair(v) -> tuple[int, int]:
    return int(v[0]), int(v[1])


def _band(a, n0: int, oh0: int, ohn: int) -> Matrix:
    """Output rows oh0 .. oh0+ohn-1 of images n0, n0+1, ... of an (N, C, OH, OW) array:
    per image a (C, ohn·OW) matrix whose rows are OH·OW apart."""
    _, c, oh, ow = a.shape
    plane = oh * ow
    return Matrix(
        a, c, ohn * ow, ld=plane, offset=n0 * c * plane + oh0 * ow, batch_stride=c * plane
    )


class KernelBackend:
    """Every backend method, implemented by launching the kernels in ``kernels/``."""

    def __init__(self, name: str, xp, module_loader, *, threads_per_block=None, max_blocks=None):
        self.name = name
        self.xp = xp
        self.runtime = KernelRuntime(
            name, module_loader, threads_per_block=threads_per_block, max_blocks=max_blocks
        )

    def __repr__(self) -> str:
        return f"KernelBackend({self.name!r})"

    # ------------------------------------------------------------ argument checks

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
                f"{a.dtype} (shape {tuple(a.shape)}); convert the tensor with .float(), or "
                "compute in float64 on device 'cpu'"
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

    def _float4(self, op: str, **arrays) -> list:
        """_float_input and _rank4 for each named array, in order."""
        checked = []
        for arg, a in arrays.items():
            a = self._float_input(op, arg, a)
            self._rank4(op, arg, a)
            checked.append(a)
        return checked

    # ------------------------------------------------------------------ GEMM

    def gemm(self, c: Matrix, a: Matrix, b: Matrix, alpha=1.0, beta=0.0, batch=1) -> None:
        """c[z] = alpha·a[z]·b[z] + beta·c[z] for z < batch (see ``backends/gemm.py``)."""
        gemm(self.runtime, self.xp, c, a, b, alpha, beta, batch)

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

    def _chunks_and_buffer(self, n_images: int, k: int, oh: int, ow: int):
        """The chunks (see :meth:`_chunks`) and one flat float32 column buffer big
        enough for the largest of them."""
        chunks = list(self._chunks(n_images, k, oh, ow))
        size = max((nb * k * ohn * ow for _, nb, _, ohn in chunks), default=0)  # 0: no images
        return chunks, self.xp.empty(size, dtype=np.float32)

    def _im2col_sizes(self, x_shape, window, chunk) -> tuple:
        """The int arguments both im2col kernels take, after their two arrays.

        ``window`` = (kernel, stride, padding, dilation); ``chunk`` = (n0, nb, oh0, ohn).
        """
        _, c, h, wd = x_shape
        oh, ow = output_hw((h, wd), *window)
        kernel, stride, padding, dilation = window
        return i32(*chunk[:2], c, h, wd, *kernel, *stride, *padding, *dilation, oh, ow, *chunk[2:])

    def _launch_im2col(self, x, col, window, chunk) -> None:
        """col <- the chunk's receptive fields of x (a thread per column entry)."""
        _, nb, _, ohn = chunk
        (kh, kw), ow = window[0], output_hw(x.shape[2:], *window)[1]
        entries = nb * x.shape[1] * kh * kw * ohn * ow
        self.runtime.launch_1d(
            "im2col", entries, (x, col, *self._im2col_sizes(x.shape, window, chunk))
        )

    def _launch_col2im(self, col, x, window, chunk) -> None:
        """x += the chunk's columns, each added back where it was read (a thread per pixel)."""
        pixels = chunk[1] * x.shape[1] * x.shape[2] * x.shape[3]
        self.runtime.launch_1d(
            "col2im", pixels, (col, x, *self._im2col_sizes(x.shape, window, chunk))
        )

    def _conv_window(self, op, x_shape, kernel, stride, padding, dilation):
        """(kernel, stride, padding, dilation) as pairs of Python ints, and the output
        size (oh, ow); an error if it is empty."""
        window = (_pair(kernel), _pair(stride), _pair(padding), _pair(dilation))
        oh, ow = output_hw(x_shape[2:], *window)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{op}: output size {oh}x{ow} < 1 for x {tuple(x_shape)}, kernel {window[0]}, "
                f"stride {window[1]}, padding {window[2]}, dilation {window[3]}"
            )
        return window, (oh, ow)

    def conv2d(self, x, w, stride, padding, dilation):
        op = "conv2d"
        x, w = self._float4(op, x=x, w=w)
        n, c = x.shape[:2]
        c_out, c_in, kh, kw = w.shape
        if c_in != c:
            raise ValueError(f"{op}: x has {c} channels but w {tuple(w.shape)} expects {c_in}")
        window, (oh, ow) = self._conv_window(op, x.shape, (kh, kw), stride, padding, dilation)
        if winograd.use_winograd(self.name, min(c, c_out), (oh, ow), *window):
            return winograd_launch.conv2d(self, x, w, window[2])
        y = self.xp.empty((n, c_out, oh, ow), dtype=np.float32)
        check_fits_int32(op, x.size, y.size)
        k = c * kh * kw
        chunks, col = self._chunks_and_buffer(n, k, oh, ow)
        weights = Matrix(w, c_out, k)
        for n0, nb, oh0, ohn in chunks:
            ncol = ohn * ow  # columns per image in this chunk
            self._launch_im2col(x, col, window, (n0, nb, oh0, ohn))
            columns = Matrix(col, k, ncol, batch_stride=k * ncol)
            self.gemm(_band(y, n0, oh0, ohn), weights, columns, batch=nb)  # y = w · col
        return y

    def conv2d_grad_input(self, gy, w, input_hw, stride, padding, dilation):
        op = "conv2d_grad_input"
        gy, w = self._float4(op, gy=gy, w=w)
        n, c_out, oh, ow = gy.shape
        c_out_w, c, kh, kw = w.shape
        if c_out_w != c_out:
            raise ValueError(f"{op}: gy has {c_out} channels but w {tuple(w.shape)} has {c_out_w}")
        h, wd = _pair(input_hw)
        window, expect = self._conv_window(op, (n, c, h, wd), (kh, kw), stride, padding, dilation)
        if expect != (oh, ow):
            raise ValueError(
                f"{op}: input size {(h, wd)} gives a {expect} output, but gy is {tuple(gy.shape)}"
            )
        if winograd.use_winograd(self.name, min(c, c_out), (h, wd), *window):
            return winograd_launch.conv2d_grad_input(self, gy, w, window[2])
        gx = self.xp.zeros((n, c, h, wd), dtype=np.float32)
        check_fits_int32(op, gx.size, gy.size)
        k = c * kh * kw
        chunks, col = self._chunks_and_buffer(n, k, oh, ow)
        weights = Matrix(w, c_out, k)
        for n0, nb, oh0, ohn in chunks:
            columns = Matrix(col, k, ohn * ow, batch_stride=k * ohn * ow)
            self.gemm(columns, weights.T, _band(gy, n0, oh0, ohn), batch=nb)  # col = wᵀ · gy
            # Each input pixel gathers the column entries it fed (adds into gx).
            self._launch_col2im(col, gx, window, (n0, nb, oh0, ohn))
        return gx

    def conv2d_grad_weight(self, x, gy, kernel_hw, stride, padding, dilation):
        op = "conv2d_grad_weight"
        x, gy = self._float4(op, x=x, gy=gy)
        n, c = x.shape[:2]
        n_gy, c_out, oh, ow = gy.shape
        kh, kw = _pair(kernel_hw)
        window, expect = self._conv_window(op, x.shape, (kh, kw), stride, padding, dilation)
        if n_gy != n or expect != (oh, ow):
            raise ValueError(
                f"{op}: x {tuple(x.shape)} with kernel {(kh, kw)} gives output {(n, *expect)}, "
                f"but gy is {tuple(gy.shape)}"
            )
        if winograd.use_winograd(self.name, min(c, c_out), (oh, ow), *window):
            return winograd_launch.conv2d_grad_weight(self, x, gy, window[2])
        check_fits_int32(op, x.size, gy.size)
        k = c * kh * kw
        chunks, col = self._chunks_and_buffer(n, k, oh, ow)
        gw = self.xp.zeros((c_out, k), dtype=np.float32)
        for n0, nb, oh0, ohn in chunks:
            ncol = ohn * ow  # columns per image in this chunk
            self._launch_im2col(x, col, window, (n0, nb, oh0, ohn))
            for b in range(nb):
                grads = _band(gy, n0 + b, oh0, ohn)  # (C_out, ncol)
                columns = Matrix(col, k, ncol, offset=b * k * ncol)  # (K, ncol)
                # gw += gy · colᵀ: a small output and a long sum, which gemm cuts
                # into slices computed side by side (split-K, backends/gemm.py).
                self.gemm(Matrix(gw, c_out, k), grads, columns.T, beta=1.0)
        return gw.reshape(c_out, c, kh, kw)

    # ---------------------------------------------------------- unfold / fold

    def im2col(self, x, kernel, stride, padding, dilation):
        """F.unfold: (N, C, H, W) -> (N, C*kh*kw, OH*OW), one launch of the im2col kernel."""
        op = "im2col"
        (x,) = self._float4(op, x=x)
        n, c = x.shape[:2]
        window, (oh, ow) = self._conv_window(op, x.shape, kernel, stride, padding, dilation)
        cols = self.xp.empty((n, c * kernel[0] * kernel[1], oh * ow), dtype=np.float32)
        check_fits_int32(op, x.size, cols.size)
        self._launch_im2col(x, cols, window, (0, n, 0, oh))
        return cols

    def col2im(self, cols, input_hw, kernel, stride, padding, dilation):
        """F.fold: (N, C*kh*kw, OH*OW) -> (N, C, *input_hw), one launch of the col2im kernel."""
        op = "col2im"
        cols = self._float_input(op, "cols", cols)
        n, k, length = cols.shape
        c = k // (kernel[0] * kernel[1])
        h, wd = _pair(input_hw)
        window, (oh, ow) = self._conv_window(op, (n, c, h, wd), kernel, stride, padding, dilation)
        if length != oh * ow:
            raise ValueError(
                f"{op}: cols {tuple(cols.shape)} must have {oh}x{ow} columns for input_hw {(h, wd)}"
            )
        x = self.xp.zeros((n, c, h, wd), dtype=np.float32)
        check_fits_int32(op, x.size, cols.size)
        self._launch_col2im(cols, x, window, (0, n, 0, oh))
        return x

    # ---------------------------------------------------------- pooling

    @staticmethod
    def _pool_sizes(n, c, input_hw, out_hw, kernel, stride, padding) -> tuple:
        """The int arguments of every pooling kernel: NC, H, W, OH, OW, KH, KW, SH, SW, PH, PW."""
        return i32(n * c, *input_hw, *out_hw, *_pair(kernel), *_pair(stride), *_pair(padding))

    def max_pool2d(self, x, kernel, stride, padding):
        op = "max_pool2d"
        (x,) = self._float4(op, x=x)
        n, c, h, wd = x.shape
        _, out_hw = self._conv_window(op, x.shape, kernel, stride, padding, (1, 1))
        y = self.xp.empty((n, c, *out_hw), dtype=np.float32)
        indices = self.xp.empty((n, c, *out_hw), dtype=np.int64)
        check_fits_int32(op, x.size, y.size)
        sizes = self._pool_sizes(n, c, (h, wd), out_hw, kernel, stride, padding)
        self.runtime.launch_1d("max_pool2d_forward", y.size, (x, y, indices, *sizes))
        return y, indices

    def _values_and_switches(self, op, name, values, indices):
        """Check a 4-D float32 array and max-pool switches of the same shape."""
        (values,) = self._float4(op, **{name: values})
        indices = self._index_input(op, "indices", indices)
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
        gx = self.xp.empty((n, c, *_pair(input_hw)), dtype=np.float32)
        check_fits_int32(op, gx.size, gy.size)
        sizes = self._pool_sizes(n, c, _pair(input_hw), (oh, ow), kernel, stride, padding)
        self.runtime.launch_1d("max_pool2d_backward", gx.size, (gy, indices, gx, *sizes))
        return gx

    def max_unpool2d(self, x, indices, output_hw):
        op = "max_unpool2d"
        x, indices = self._values_and_switches(op, "x", x, indices)
        n, c, h, wd = x.shape
        oh, ow = _pair(output_hw)
        y = self.xp.zeros((n, c, oh, ow), dtype=np.float32)
        check_fits_int32(op, x.size, y.size)
        self.runtime.launch_1d(
            "max_unpool2d_forward", x.size, (x, indices, y, *i32(n * c, h * wd, oh * ow))
        )
        return y

    def max_unpool2d_grad(self, gy, indices):
        op = "max_unpool2d_grad"
        (gy,) = self._float4(op, gy=gy)
        indices = self._index_input(op, "indices", indices)
        self._rank4(op, "indices", indices)
        n, c, oh, ow = gy.shape
        if indices.shape[:2] != (n, c):
            raise ValueError(
                f"{op}: indices {tuple(indices.shape)} and gy {tuple(gy.shape)} differ in N, C"
            )
        h, wd = indices.shape[2:]
        gx = self.xp.empty(indices.shape, dtype=np.float32)
        check_fits_int32(op, gx.size, gy.size)
        self.runtime.launch_1d(
            "max_unpool2d_backward", gx.size, (gy, indices, gx, *i32(n * c, h * wd, oh * ow))
        )
        return gx

    def avg_pool2d(self, x, kernel, stride, padding):
        op = "avg_pool2d"
        (x,) = self._float4(op, x=x)
        n, c, h, wd = x.shape
        _, out_hw = self._conv_window(op, x.shape, kernel, stride, padding, (1, 1))
        y = self.xp.empty((n, c, *out_hw), dtype=np.float32)
        check_fits_int32(op, x.size, y.size)
        sizes = self._pool_sizes(n, c, (h, wd), out_hw, kernel, stride, padding)
        self.runtime.launch_1d("avg_pool2d_forward", y.size, (x, y, *sizes))
        return y

    def avg_pool2d_grad(self, gy, input_hw, kernel, stride, padding):
        op = "avg_pool2d_grad"
        (gy,) = self._float4(op, gy=gy)
        n, c, oh, ow = gy.shape
        gx = self.xp.empty((n, c, *_pair(input_hw)), dtype=np.float32)
        check_fits_int32(op, gx.size, gy.size)
        sizes = self._pool_sizes(n, c, _pair(input_hw), (oh, ow), kernel, stride, padding)
        self.runtime.launch_1d("avg_pool2d_backward", gx.size, (gy, gx, *sizes))
        return gx

    # ---------------------------------------------------------- Gram matrices

    def gram(self, x):
        op = "gram"
        (x,) = self._float4(op, x=x)
        n, c, h, wd = x.shape
        p = h * wd
        g = self.xp.empty((n, c, c), dtype=np.float32)
        check_fits_int32(op, x.size, g.size)
        if n == 0 or c == 0:
            return g
        gram = self.runtime.compiled("gram.cu")
        tile = gram.define("GRAM_TILE")
        tiles = math.ceil(c / tile)
        triangle = tiles * (tiles + 1) // 2  # tiles on and below the diagonal
        # Split-K, as in backends/gemm.py: a small G summed over many pixels.
        slice_len = math.ceil(p / split_k_slices(triangle * n, p))
        slices = math.ceil(p / slice_len)
        partials = g if slices == 1 else self.xp.empty((slices, n, c, c), dtype=np.float32)
        args = (x, partials, *i32(c, p, slice_len), np.float32(1.0 / (c * p)))
        gram.function("gram")((triangle, n, slices), (tile, tile, 1), args)
        return g if slices == 1 else partials.sum(axis=0)

    def gram_grad(self, g_gram, x):
        """gx[n] = (gG[n] + gG[n]ᵀ) · F / (C·H·W): two batched GEMMs, the second with op(A) = gGᵀ."""
        op = "gram_grad"
        g_gram = self._float_input(op, "gG", g_gram)
        (x,) = self._float4(op, x=x)
        n, c, h, wd = x.shape
        if tuple(g_gram.shape) != (n, c, c):
            raise ValueError(f"{op}: gG must have shape {(n, c, c)}, got {tuple(g_gram.shape)}")
        p = h * wd
        gx = self.xp.empty_like(x)
        check_fits_int32(op, x.size, g_gram.size)
        scale = 1.0 / (c * p)
        g = Matrix(g_gram, c, c, batch_stride=c * c)
        f = Matrix(x, c, p, batch_stride=c * p)
        out = Matrix(gx, c, p, batch_stride=c * p)
        self.gemm(out, g, f, alpha=scale, batch=n)  # gx = s·gG·F
        self.gemm(out, g.T, f, alpha=scale, beta=1.0, batch=n)  # gx += s·gGᵀ·F
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
