"""The NumPy backend: every kernel-backed op written with plain NumPy arrays.

Convolution is the heart of this file, and it is three uses of one idea:

* **im2col** ("image to columns") copies every receptive field of the padded
  input into one column of a matrix ``cols`` of shape (C*kh*kw, H_out*W_out).
* **col2im** is its adjoint (its transpose): it adds every column back onto the
  receptive field it came from.
* **GEMM** (one matrix product, done by BLAS) does all the arithmetic.

im2col and col2im are one loop over the kh*kw kernel offsets, read side by side
in :func:`im2col_loop` and :func:`col2im`: for offset (i, j), one strided slice of
the padded image is *copied* into the columns (``=``), or the columns are *added*
back onto it (``+=``; receptive fields overlap, so values add up).  What runs
for im2col is :func:`im2col_strided`, the same copy done by one ``reshape`` of a
strided view, because it measured faster (see ``im2col``).

With ``w_mat = w.reshape(C_out, C_in*kh*kw)``::

    conv2d             y    = w_mat   @ im2col(x)        im2col, then GEMM
    conv2d_grad_input  gx   = col2im(w_mat.T @ gy)       GEMM, then col2im
    conv2d_grad_weight gw   = gy      @ im2col(x).T      im2col, then GEMM

``conv2d_grad_input`` is exactly ``conv_transpose2d``; the backend's own
``im2col``/``col2im`` methods are ``F.unfold``/``F.fold``.

3x3 stride-1 convolutions (all of VGG16's) may instead run as Winograd F(4x4, 3x3),
4x fewer multiplications (``backends/winograd.py``): ``MINIDL_CONV=winograd``
(``auto`` picks per layer, by ``winograd.AUTO_RULES``).  Stride-1 convolutions
may also run as MEC (``backends/mec.py``), im2col with 3x fewer copies:
``MINIDL_CONV=mec``, or ``auto`` by ``mec.use_mec``'s rule.

Memory: a 3x3 conv on a 64-channel 512x512 image has a 576 x 262144 ``cols``
matrix (600 MB in float32).  So each image is processed in *chunks of output
rows*: a chunk of ``rows`` output rows needs only the columns of those rows, a
(C*kh*kw, rows*W_out) matrix that we keep under ``WORKSPACE_BYTES``.

Layout: ``cols`` has one row per (c, i, j) and one column per output pixel
(oh, ow).  Then the im2col copy moves runs of W_out neighbouring floats, and
``w_mat @ cols`` is already (C_out, H_out*W_out), i.e. NCHW.  The transposed
layout (pixels, C*kh*kw) copies runs of only kw floats: about 10x slower here,
for the same GEMM speed.

Pooling uses the same "loop over the kernel offsets, take a strided slice"
pattern, see :func:`window_slices`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from minidl.backends import mec, threads, winograd
from minidl.geometry import output_hw, output_size

# Largest im2col/col2im matrix built at once (bytes).  Each chunk is one BLAS call,
# and each call wakes BLAS's threads, so bigger chunks are faster, and cost memory.
# VGG16 forward+backward, 2 threads, here: 8 / 16 / 32 MB chunks took 2.80 / 2.58 /
# 2.32 s at 224 px and 16.7 / 14.3 / 13.7 s at 512 px, peaking at 472 / 494 / 526 MB.
WORKSPACE_BYTES = 16 * 2**20


def _pad(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x`` by ``padding`` on each side (no copy if zero)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def window_slices(i, j, out_hw, stride, dilation=(1, 1)):
    """Where kernel offset (i, j) reads, for all output positions at once.

    Output pixel (oh, ow) sees padded-input pixel
    (oh*stride_h + i*dilation_h, ow*stride_w + j*dilation_w).  Over all oh, ow that
    is one strided slice per axis; returns the pair of slices (rows, cols).
    """
    (ho, wo), (sh, sw), (dh, dw) = out_hw, stride, dilation
    top, left = i * dh, j * dw
    return (
        slice(top, top + sh * (ho - 1) + 1, sh),
        slice(left, left + sw * (wo - 1) + 1, sw),
    )


def _row_chunks(h_out: int, w_out: int, k: int, itemsize: int):
    """Split output rows 0..h_out into ranges whose (k, rows*w_out) matrix fits the workspace."""
    rows = max(1, WORKSPACE_BYTES // max(1, k * w_out * itemsize))
    for r0 in range(0, h_out, rows):
        yield r0, min(r0 + rows, h_out)


# ------------------------------------------------------------- im2col / col2im
#
# All three take one padded image ``padded`` (C, H_pad, W_pad) whose row 0 is the
# top row of the first output row's receptive field, and ``out_hw`` = (output rows,
# output columns) of the columns to make.


def im2col_loop(padded, kernel_hw, out_hw, stride, dilation):
    """Receptive fields as columns (C*kh*kw, rows*w_out): per kernel offset, copy one slice."""
    c = padded.shape[0]
    kh, kw = kernel_hw
    cols = np.empty((c, kh, kw, *out_hw), dtype=padded.dtype)
    for i in range(kh):
        for j in range(kw):
            hs, ws = window_slices(i, j, out_hw, stride, dilation)
            cols[:, i, j] = padded[:, hs, ws]
    return cols.reshape(c * kh * kw, out_hw[0] * out_hw[1])


def col2im(cols, padded, kernel_hw, out_hw, stride, dilation):
    """Adjoint of im2col: per kernel offset, add one slice of columns back (``padded`` in place)."""
    c = padded.shape[0]
    kh, kw = kernel_hw
    cols = cols.reshape(c, kh, kw, *out_hw)
    for i in range(kh):
        for j in range(kw):
            hs, ws = window_slices(i, j, out_hw, stride, dilation)
            padded[:, hs, ws] += cols[:, i, j]


def col2im_by_threads(cols, padded, kernel_hw, out_hw, stride, dilation):
    """:func:`col2im`, the threads of ``backends/threads.py`` taking a share of the channels each."""
    k = kernel_hw[0] * kernel_hw[1]

    def add_back(c0, c1):  # channels c0..c1: rows c0*k..c1*k of the columns
        col2im(cols[c0 * k : c1 * k], padded[c0:c1], kernel_hw, out_hw, stride, dilation)

    threads.for_each_part(add_back, padded.shape[0], cols.nbytes)


def im2col_strided(padded, kernel_hw, out_hw, stride, dilation):
    """:func:`im2col_loop` without the loop: one reshape of a strided view.

    Element [c, i, j, oh, ow] of the 5-d view below is
    ``padded[c, oh*sh + i*dh, ow*sw + j*dw]``; the view shares memory with
    ``padded`` (no copy) and the reshape copies it into a contiguous matrix whose
    row index is (c, i, j) and column index is (oh, ow), a share of the channels
    per thread (``backends/threads.py``).
    """
    c = padded.shape[0]
    (kh, kw), (sh, sw), (dh, dw) = kernel_hw, stride, dilation
    s_c, s_h, s_w = padded.strides  # bytes to step one channel / row / column
    view = as_strided(
        padded,
        shape=(c, kh, kw, *out_hw),
        strides=(s_c, dh * s_h, dw * s_w, sh * s_h, sw * s_w),
        writeable=False,
    )
    return threads.contiguous(view, axis=0).reshape(c * kh * kw, out_hw[0] * out_hw[1])


# The one that runs.  Measured per 3x3 layer of VGG16 in row chunks (2-core CPU,
# float32, best of 5): the strided view takes 0.67-0.83x the time of the loop
# (64 channels at 224 px: 21 vs 25 ms per image; 128 at 112 px: 8.6 vs 12.8 ms),
# all but the 3-channel first layer (0.37 vs 0.33 ms).  Tests check both agree.
im2col = im2col_strided


def _im2col_chunks(x, kernel, out_hw, stride, padding, dilation):
    """Yield (b, r0, r1, cols): the im2col columns of output rows r0..r1 of image b,
    for every image and every row chunk (see ``WORKSPACE_BYTES``)."""
    n, c = x.shape[:2]
    ho, wo = out_hw
    for b in range(n):
        padded = _pad(x[b], padding)
        for r0, r1 in _row_chunks(ho, wo, c * kernel[0] * kernel[1], x.itemsize):
            # Output rows r0..r1 read padded rows from r0*stride_h on.
            cols = im2col(padded[:, r0 * stride[0] :], kernel, (r1 - r0, wo), stride, dilation)
            yield b, r0, r1, cols


def _col2im_chunks(columns, n, c, dtype, input_hw, kernel, out_hw, stride, padding, dilation):
    """(N, C, *input_hw) from col2im of ``columns(b, r0, r1)``, the columns of image b's
    output rows r0..r1, one row chunk at a time: the adjoint of :func:`_im2col_chunks`."""
    (h, wd), (ph, pw), (ho, wo) = input_hw, padding, out_hw
    gx = np.empty((n, c, h, wd), dtype=dtype)
    for b in range(n):
        # Padded rows/cols that no window reaches (the output_padding case) stay 0.
        padded = np.zeros((c, h + 2 * ph, wd + 2 * pw), dtype=dtype)
        for r0, r1 in _row_chunks(ho, wo, c * kernel[0] * kernel[1], gx.itemsize):
            cols = columns(b, r0, r1)
            col2im_by_threads(cols, padded[:, r0 * stride[0] :], kernel, (r1 - r0, wo), stride, dilation)
        threads.copy(gx[b], padded[:, ph : ph + h, pw : pw + wd])
    return gx


class CpuBackend:
    """NumPy implementations of the kernel-backed ops (see ``minidl.backends``)."""

    name = "cpu"
    xp = np

    # ---------------------------------------------------------------- convolution

    def conv2d(self, x, w, stride, padding, dilation):
        """y[n] = w_mat @ im2col(x[n]): (N, C_in, H, W) * (C_out, C_in, kh, kw) -> (N, C_out, Ho, Wo)."""
        n, c, h, wd = x.shape
        c_out, _, kh, kw = w.shape
        ho, wo = output_hw((h, wd), (kh, kw), stride, padding, dilation)
        if winograd.use_winograd(self.name, min(c, c_out), (ho, wo), (kh, kw), stride, padding, dilation):
            return winograd.conv2d(x, w, padding)
        if mec.use_mec(c, c_out, stride):
            return mec.conv2d(x, w, padding, dilation)
        w_mat = w.reshape(c_out, c * kh * kw)
        y = np.empty((n, c_out, ho * wo), dtype=np.result_type(x, w))
        for b, r0, r1, cols in _im2col_chunks(x, (kh, kw), (ho, wo), stride, padding, dilation):
            threads.matmul(w_mat, cols, y[b, :, r0 * wo : r1 * wo])
        return y.reshape(n, c_out, ho, wo)

    def conv2d_grad_input(self, gy, w, input_hw, stride, padding, dilation):
        """gx[n] = col2im(w_mat.T @ gy[n]), cropped to ``input_hw``.  This is conv_transpose2d.

        With stride 1 and dilation 1 the same gx is also a *full* convolution of gy
        with every filter rotated by 180 degrees and the channel axes swapped
        (padding k - 1 - p, ``winograd.adjoint_filters``), i.e. conv2d again: the
        way Winograd computes it, and faster with im2col too when the layer does
        not widen (C_in >= C_out: the copy im2col makes of gy costs less than
        col2im's kh*kw read-add-writes of gx) and has enough pixels to pay for
        rotating the filters, or when MEC computes the rotated convolution.
        Measured (2 cores, ms, rotated with im2col vs col2im): 64 -> 64 channels at
        224 px 41 vs 61, 256 -> 256 at 64 px 25 vs 35, 512 -> 512 at 32 px 26 vs 23
        (the rotation alone 2.4), 3 -> 64 at 256 px 37 vs 5; rotated with MEC vs
        col2im: 64 -> 128 at 128 px 27.5 vs 32.5.
        """
        n, c_out, ho, wo = gy.shape
        _, c, kh, kw = w.shape
        self._check_output_hw(
            "conv2d_grad_input", (ho, wo), input_hw, (kh, kw), stride, padding, dilation
        )
        ph, pw = padding
        full = stride == (1, 1) and dilation == (1, 1) and ph < kh and pw < kw
        if full and winograd.use_winograd(
            self.name, min(c, c_out), input_hw, (kh, kw), stride, padding, dilation
        ):
            return winograd.conv2d_grad_input(gy, w, input_hw, padding)
        rotation_pays = c >= c_out and input_hw[0] * input_hw[1] >= 8 * c_out
        if full and (mec.use_mec(c_out, c, stride) or rotation_pays):
            # (conv2d below then picks MEC by the same rule, or im2col)
            return self.conv2d(gy, winograd.adjoint_filters(w), (1, 1), (kh - 1 - ph, kw - 1 - pw), (1, 1))
        w_mat_t = w.reshape(c_out, c * kh * kw).T
        gy_mat = gy.reshape(n, c_out, ho * wo)

        def columns(b, r0, r1):
            return threads.matmul(w_mat_t, gy_mat[b, :, r0 * wo : r1 * wo])

        return _col2im_chunks(columns, n, c, np.result_type(gy, w), input_hw, (kh, kw),
                                   (ho, wo), stride, padding, dilation)  # fmt: skip

    def conv2d_grad_weight(self, x, gy, kernel_hw, stride, padding, dilation):
        """gw = sum over images of gy[n] @ im2col(x[n]).T, reshaped to (C_out, C_in, kh, kw)."""
        n, c, _, _ = x.shape
        _, c_out, ho, wo = gy.shape
        kh, kw = kernel_hw
        if winograd.use_winograd(self.name, min(c, c_out), (ho, wo), kernel_hw, stride, padding, dilation):
            return winograd.conv2d_grad_weight(x, gy, padding)
        gy_mat = gy.reshape(n, c_out, ho * wo)
        gw = np.zeros((c_out, c * kh * kw), dtype=np.result_type(x, gy))
        for b, r0, r1, cols in _im2col_chunks(x, kernel_hw, (ho, wo), stride, padding, dilation):
            gw += threads.matmul(gy_mat[b, :, r0 * wo : r1 * wo], cols.T)
        return gw.reshape(c_out, c, kh, kw)

    @staticmethod
    def _check_output_hw(op, out_hw, input_hw, kernel, stride, padding, dilation):
        """Several input sizes give one output size; refuse an input_hw that does not."""
        if tuple(out_hw) != output_hw(input_hw, kernel, stride, padding, dilation):
            raise ValueError(
                f"{op}: an output of spatial size {tuple(out_hw)} is not the conv2d output "
                f"of input_hw={tuple(input_hw)} with kernel {tuple(kernel)}, stride {tuple(stride)}, "
                f"padding {tuple(padding)}, dilation {tuple(dilation)}"
            )

    # ---------------------------------------------------------------- unfold / fold

    def im2col(self, x, kernel, stride, padding, dilation):
        """F.unfold: (N, C, H, W) -> (N, C*kh*kw, Ho*Wo), every receptive field a column."""
        n, c, h, wd = x.shape
        ho, wo = output_hw((h, wd), kernel, stride, padding, dilation)
        cols = np.empty((n, c * kernel[0] * kernel[1], ho * wo), dtype=x.dtype)
        for b in range(n):
            cols[b] = im2col(_pad(x[b], padding), kernel, (ho, wo), stride, dilation)
        return cols

    def col2im(self, cols, input_hw, kernel, stride, padding, dilation):
        """F.fold: (N, C*kh*kw, Ho*Wo) -> (N, C, *input_hw), each column added onto its field."""
        n, k, _ = cols.shape
        ho, wo = output_hw(input_hw, kernel, stride, padding, dilation)
        if cols.shape[2] != ho * wo:
            raise ValueError(
                f"col2im: {cols.shape[2]} columns, but input_hw={tuple(input_hw)} with kernel "
                f"{tuple(kernel)} has {ho}x{wo} windows"
            )

        def columns(b, r0, r1):
            return cols[b, :, r0 * wo : r1 * wo]

        return _col2im_chunks(columns, n, k // (kernel[0] * kernel[1]), cols.dtype, input_hw,
                                   kernel, (ho, wo), stride, padding, dilation)  # fmt: skip

    # ---------------------------------------------------------------- max pooling

    def max_pool2d(self, x, kernel, stride, padding):
        """Max over each window; also return where it was (flat h*W+w of the unpadded plane).

        Loops over the kh*kw kernel offsets, keeping the running maximum ``best`` and
        the number ``which`` of the offset it came from.  A strict ``>`` keeps the
        first maximum in row-major window order.  Padding is -inf, so it never wins
        against a real value.  A NaN wins against any number (as in PyTorch), and its
        index is kept with it: ``np.maximum`` carries NaN into ``best``, and the few
        windows that hold one get the offset of their first NaN at the end.
        The threads of ``backends/threads.py`` take a share of the channels each.
        """
        n, c, h, wd = x.shape
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
        ho, wo = output_size(h, kh, sh, ph), output_size(wd, kw, sw, pw)
        padded = _pad(x, padding, value=-np.inf)
        offsets = [(i, j) for i in range(kh) for j in range(kw)]

        def window(k):  # the value at offset k of every window, as a strided view
            return padded[(..., *window_slices(*offsets[k], (ho, wo), stride))]

        # Unpadded flat index of offset (0, 0) of each window, and the step to offset k;
        # int32 where the plane allows: the switches are kept until the backward pass,
        # and int64 would add 31 MB to VGG16's peak at 512 px (F.max_pool2d hands
        # return_indices=True users int64, as PyTorch does).
        index = np.int32 if h * wd < 2**31 else np.int64
        rows, cols = np.arange(ho) * sh - ph, np.arange(wo) * sw - pw
        start = (rows[:, None] * wd + cols[None, :]).astype(index)
        step = np.array([i * wd + j for i, j in offsets], dtype=index)
        best = np.empty((n, c, ho, wo), dtype=x.dtype)
        switches = np.empty(best.shape, dtype=index)

        def pool(c0, c1):  # channels c0..c1
            best_part = best[:, c0:c1]
            best_part[...] = window(0)[:, c0:c1]
            which = np.zeros(best_part.shape, dtype=np.int16)
            for k in range(1, len(offsets)):
                value = window(k)[:, c0:c1]
                # which = k where value > best, else unchanged; this arithmetic measured
                # 3x faster than which[value > best] = k or np.copyto(..., where=)
                which += (value > best_part) * (k - which)
                np.maximum(best_part, value, out=best_part)
            has_nan = np.isnan(best_part)
            if has_nan.any():
                for k in reversed(range(len(offsets))):  # the first NaN is written last
                    np.copyto(which, k, where=has_nan & np.isnan(window(k)[:, c0:c1]))
            np.add(start, step[which], out=switches[:, c0:c1])

        threads.for_each_part(pool, c, x.nbytes)
        return best, switches

    def max_pool2d_grad(self, gy, indices, input_hw, kernel, stride, padding):
        """Add each gy at its switch in a zero (N, C, H, W) array.

        Where windows do not overlap (stride >= kernel, as VGG16's 2x2 pools of
        stride 2), each input pixel is the switch of at most one window, so adding
        is writing: one fancy-index assignment per share of the planes.  Windows
        that overlap may share a switch, whose values must add up: per (n, c)
        plane, ``np.bincount(indices, weights=gy)`` sums the values that land on
        each position (``np.add.at`` would too, up to 1.8x slower here).  The
        threads of ``backends/threads.py`` take a share of the planes each.
        """
        n, c = gy.shape[:2]
        h, wd = input_hw
        planes = n * c
        gx = np.empty((planes, h * wd), dtype=gy.dtype)
        switches, values = indices.reshape(planes, -1), gy.reshape(planes, -1)
        overlapping = stride[0] < kernel[0] or stride[1] < kernel[1]

        def scatter(p0, p1):  # planes p0..p1
            if overlapping:  # (bincount writes whole planes)
                for p in range(p0, p1):
                    gx[p] = np.bincount(switches[p], weights=values[p], minlength=h * wd)
            else:  # each switch as a flat index into gx[p0:p1]
                gx[p0:p1] = 0  # (here, not by np.zeros: on every core, and still in cache after)
                flat = switches[p0:p1] + np.arange(p1 - p0)[:, None] * (h * wd)
                gx[p0:p1].reshape(-1)[flat] = values[p0:p1]

        threads.for_each_part(scatter, planes, gy.nbytes)
        return gx.reshape(n, c, h, wd)

    def max_unpool2d(self, x, indices, output_hw):
        """Write each x at its index in a zero (N, C, *output_hw) array."""
        n, c = x.shape[:2]
        h, wd = output_hw
        y = np.zeros((n, c, h * wd), dtype=x.dtype)
        np.put_along_axis(y, indices.reshape(n, c, -1), x.reshape(n, c, -1), axis=2)
        return y.reshape(n, c, h, wd)

    def max_unpool2d_grad(self, gy, indices):
        """Gather gy at the indices: the adjoint of the write in max_unpool2d."""
        n, c = indices.shape[:2]
        flat = np.take_along_axis(gy.reshape(n, c, -1), indices.reshape(n, c, -1), axis=2)
        return flat.reshape(indices.shape)

    # ---------------------------------------------------------------- average pooling

    def avg_pool2d(self, x, kernel, stride, padding):
        """Mean over each window; padded zeros count in the divisor (count_include_pad=True)."""
        n, c, h, wd = x.shape
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
        ho, wo = output_size(h, kh, sh, ph), output_size(wd, kw, sw, pw)
        padded = _pad(x, padding)
        y = np.zeros((n, c, ho, wo), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                hs, ws = window_slices(i, j, (ho, wo), stride)
                y += padded[:, :, hs, ws]
        y /= kh * kw
        return y

    def avg_pool2d_grad(self, gy, input_hw, kernel, stride, padding):
        """Spread gy / (kh*kw) evenly over each window (the col2im pattern), then crop the padding."""
        n, c, ho, wo = gy.shape
        h, wd = input_hw
        (kh, kw), (ph, pw) = kernel, padding
        share = gy / (kh * kw)
        gx_padded = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=gy.dtype)
        for i in range(kh):
            for j in range(kw):
                hs, ws = window_slices(i, j, (ho, wo), stride)
                gx_padded[:, :, hs, ws] += share
        return np.ascontiguousarray(gx_padded[:, :, ph : ph + h, pw : pw + wd])

    # ---------------------------------------------------------------- Gram matrix

    def gram(self, x):
        """G[n] = F Fᵀ / (C·H·W) with F = x[n] as a (C, H·W) matrix."""
        n, c, h, wd = x.shape
        return threads.gram(x.reshape(n, c, h * wd)) / (c * h * wd)

    def gram_grad(self, g_gram, x):
        """d(loss)/dx = (gG + gGᵀ) F / (C·H·W), reshaped like x."""
        n, c, h, wd = x.shape
        f = x.reshape(n, c, h * wd)
        # Scale the small (C, C) matrix, not the (C, H·W) product: one pass less over x's size.
        g_sym = (g_gram + g_gram.transpose(0, 2, 1)) / (c * h * wd)
        return threads.matmul(g_sym, f).reshape(x.shape)
