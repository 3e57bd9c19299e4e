"""The NumPy backend: every kernel-backed op written with plain NumPy arrays.

Convolution is the heart of this file, and it is three uses of one idea:

* **im2col** ("image to columns") copies every receptive field of the padded
  input into one column of a matrix ``cols`` of shape (C*kh*kw, H_out*W_out).
  It needs no loop: the receptive fields are a *strided view* of the padded
  image (``as_strided``), and one ``reshape`` copies that view into ``cols``.
* **col2im** is the adjoint (the transpose) of im2col: it adds every column
  back onto the receptive field it came from.  Receptive fields overlap, so it
  cannot be one write through a view; it loops over the kh*kw kernel offsets and
  adds one strided slice of the image per offset.
* **GEMM** (one matrix product, done by BLAS) does all the arithmetic.

With ``w_mat = w.reshape(C_out, C_in*kh*kw)``::

    conv2d             y    = w_mat   @ im2col(x)        im2col, then GEMM
    conv2d_grad_input  gx   = col2im(w_mat.T @ gy)       GEMM, then col2im
    conv2d_grad_weight gw   = gy      @ im2col(x).T      im2col, then GEMM

``conv2d_grad_input`` is exactly ``conv_transpose2d``.

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
pattern as col2im, see :func:`_window_slices`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

# Largest im2col/col2im matrix built at once (bytes).  Small enough that the
# chunk stays in the CPU's last-level cache while BLAS reads it.
WORKSPACE_BYTES = 8 * 2**20


def _out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a sliding window, as in PyTorch (floor division)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _pad(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x`` by ``padding`` on each side (no copy if zero)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def _window_slices(i, j, out_hw, stride, dilation=(1, 1)):
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


def im2col(xp, kernel_hw, rows, w_out, stride, dilation):
    """Receptive fields of one padded image as columns: (C*kh*kw, rows*w_out).

    ``xp`` is a padded image (C, H_pad, W_pad) whose row 0 is the top row of the
    first output row's receptive field.  Element [c, i, j, oh, ow] of the 5-d view
    below is ``xp[c, oh*sh + i*dh, ow*sw + j*dw]``; the view shares memory with
    ``xp`` (no copy) and the final reshape copies it into a contiguous matrix whose
    row index is (c, i, j) and column index is (oh, ow).
    """
    c = xp.shape[0]
    (kh, kw), (sh, sw), (dh, dw) = kernel_hw, stride, dilation
    s_c, s_h, s_w = xp.strides  # bytes to step one channel / row / column
    view = as_strided(
        xp,
        shape=(c, kh, kw, rows, w_out),
        strides=(s_c, dh * s_h, dw * s_w, sh * s_h, sw * s_w),
        writeable=False,
    )
    return view.reshape(c * kh * kw, rows * w_out)


def col2im(cols, xp, kernel_hw, rows, w_out, stride, dilation):
    """Adjoint of :func:`im2col`: add each column back onto its receptive field in ``xp``.

    ``cols`` is (C*kh*kw, rows*w_out) and ``xp`` a padded image (C, H_pad, W_pad),
    updated in place.  Receptive fields overlap, so a write through the strided
    view of im2col would lose updates; instead, for each kernel offset (i, j) the
    values cols[c, i, j, :, :] go to one strided slice of xp, with ``+=``.
    """
    c = xp.shape[0]
    kh, kw = kernel_hw
    cols = cols.reshape(c, kh, kw, rows, w_out)
    for i in range(kh):
        for j in range(kw):
            hs, ws = _window_slices(i, j, (rows, w_out), stride, dilation)
            xp[:, hs, ws] += cols[:, i, j]


class CpuBackend:
    """NumPy implementations of the kernel-backed ops (see ``minidl.backends``)."""

    name = "cpu"
    xp = np

    # ---------------------------------------------------------------- convolution

    def conv2d(self, x, w, stride, padding, dilation):
        """y[n] = w_mat @ im2col(x[n]): (N, C_in, H, W) * (C_out, C_in, kh, kw) -> (N, C_out, Ho, Wo)."""
        n, c, h, wd = x.shape
        c_out, _, kh, kw = w.shape
        ho = _out_size(h, kh, stride[0], padding[0], dilation[0])
        wo = _out_size(wd, kw, stride[1], padding[1], dilation[1])
        w_mat = w.reshape(c_out, c * kh * kw)
        y = np.empty((n, c_out, ho * wo), dtype=np.result_type(x, w))
        for b in range(n):
            xp = _pad(x[b], padding)
            for r0, r1 in _row_chunks(ho, wo, c * kh * kw, y.itemsize):
                # Output rows r0..r1 read padded rows from r0*stride_h on.
                cols = im2col(xp[:, r0 * stride[0] :], (kh, kw), r1 - r0, wo, stride, dilation)
                np.matmul(w_mat, cols, out=y[b, :, r0 * wo : r1 * wo])
        return y.reshape(n, c_out, ho, wo)

    def conv2d_grad_input(self, gy, w, input_hw, stride, padding, dilation):
        """gx[n] = col2im(w_mat.T @ gy[n]), cropped to ``input_hw``.  This is conv_transpose2d."""
        n, c_out, ho, wo = gy.shape
        _, c, kh, kw = w.shape
        h, wd = input_hw
        ph, pw = padding
        if (ho, wo) != (
            _out_size(h, kh, stride[0], ph, dilation[0]),
            _out_size(wd, kw, stride[1], pw, dilation[1]),
        ):
            raise ValueError(
                f"conv2d_grad_input: gy of spatial size {(ho, wo)} is not the conv2d output "
                f"of input_hw={tuple(input_hw)} with kernel {(kh, kw)}, stride {tuple(stride)}, "
                f"padding {tuple(padding)}, dilation {tuple(dilation)}"
            )
        w_mat_t = w.reshape(c_out, c * kh * kw).T
        gy_mat = gy.reshape(n, c_out, ho * wo)
        dtype = np.result_type(gy, w)
        gx = np.empty((n, c, h, wd), dtype=dtype)
        for b in range(n):
            # Padded rows/cols that no window reaches (the output_padding case) stay 0.
            gxp = np.zeros((c, h + 2 * ph, wd + 2 * pw), dtype=dtype)
            for r0, r1 in _row_chunks(ho, wo, c * kh * kw, gx.itemsize):
                cols = w_mat_t @ gy_mat[b, :, r0 * wo : r1 * wo]
                col2im(cols, gxp[:, r0 * stride[0] :], (kh, kw), r1 - r0, wo, stride, dilation)
            gx[b] = gxp[:, ph : ph + h, pw : pw + wd]
        return gx

    def conv2d_grad_weight(self, x, gy, kernel_hw, stride, padding, dilation):
        """gw = sum over images of gy[n] @ im2col(x[n]).T, reshaped to (C_out, C_in, kh, kw)."""
        n, c, _, _ = x.shape
        _, c_out, ho, wo = gy.shape
        kh, kw = kernel_hw
        gy_mat = gy.reshape(n, c_out, ho * wo)
        gw = np.zeros((c_out, c * kh * kw), dtype=np.result_type(x, gy))
        for b in range(n):
            xp = _pad(x[b], padding)
            for r0, r1 in _row_chunks(ho, wo, c * kh * kw, gw.itemsize):
                cols = im2col(xp[:, r0 * stride[0] :], (kh, kw), r1 - r0, wo, stride, dilation)
                gw += gy_mat[b, :, r0 * wo : r1 * wo] @ cols.T
        return gw.reshape(c_out, c, kh, kw)

    # ---------------------------------------------------------------- max pooling

    def max_pool2d(self, x, kernel, stride, padding):
        """Max over each window; also return where it was (flat h*W+w of the unpadded plane).

        Loops over the kh*kw kernel offsets, keeping the running maximum ``best`` and
        the number ``which`` of the offset it came from.  A strict ``>`` keeps the
        first maximum in row-major window order.  Padding is -inf, so it never wins
        against a real value.  A NaN wins against any number (as in PyTorch), and its
        index is kept with it.
        """
        h, wd = x.shape[2:]
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
        ho, wo = _out_size(h, kh, sh, ph), _out_size(wd, kw, sw, pw)
        xp = _pad(x, padding, value=-np.inf)
        offsets = [(i, j) for i in range(kh) for j in range(kw)]
        best = which = None
        for k, (i, j) in enumerate(offsets):
            hs, ws = _window_slices(i, j, (ho, wo), stride)
            value = xp[:, :, hs, ws]
            if k == 0:
                best = value.copy()
                which = np.zeros(best.shape, dtype=np.int16)
                continue
            # "not <=" is also true when value is NaN; a NaN best is never replaced
            better = ~(value <= best) & ~np.isnan(best)
            np.maximum(best, value, out=best)
            # which = k where better, else unchanged; arithmetic is faster than which[better] = k
            which += better * (k - which)
        # Unpadded flat index of offset (0, 0) of each window, and the step to offset k.
        start = (np.arange(ho) * sh - ph)[:, None] * wd + (np.arange(wo) * sw - pw)[None, :]
        step = np.array([i * wd + j for i, j in offsets], dtype=np.int64)
        return best, start + step[which]

    def max_pool2d_grad(self, gy, indices, input_hw, kernel, stride, padding):
        """Add each gy at its switch in a zero (N, C, H, W) array (windows may share a switch).

        Per (n, c) plane, ``np.bincount(indices, weights=gy)`` sums the values that land
        on each position: a fast scatter-add (``np.add.at`` is slow before NumPy 1.25).
        One plane at a time keeps bincount's float64 result small and in cache.
        The switches say everything, so the window geometry is not needed here.
        """
        n, c = gy.shape[:2]
        h, wd = input_hw
        gx = np.empty((n, c, h, wd), dtype=gy.dtype)
        for b in range(n):
            for ch in range(c):
                plane = np.bincount(
                    indices[b, ch].ravel(), weights=gy[b, ch].ravel(), minlength=h * wd
                )
                gx[b, ch] = plane.reshape(h, wd)
        return gx

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
        ho, wo = _out_size(h, kh, sh, ph), _out_size(wd, kw, sw, pw)
        xp = _pad(x, padding)
        y = np.zeros((n, c, ho, wo), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                hs, ws = _window_slices(i, j, (ho, wo), stride)
                y += xp[:, :, hs, ws]
        y /= kh * kw
        return y

    def avg_pool2d_grad(self, gy, input_hw, kernel, stride, padding):
        """Spread gy / (kh*kw) evenly over each window (the col2im pattern), then crop the padding."""
        n, c, ho, wo = gy.shape
        h, wd = input_hw
        (kh, kw), (ph, pw) = kernel, padding
        share = gy / (kh * kw)
        gxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=gy.dtype)
        for i in range(kh):
            for j in range(kw):
                hs, ws = _window_slices(i, j, (ho, wo), stride)
                gxp[:, :, hs, ws] += share
        return np.ascontiguousarray(gxp[:, :, ph : ph + h, pw : pw + wd])

    # ---------------------------------------------------------------- Gram matrix

    def gram(self, x):
        """G[n] = F Fᵀ / (C·H·W) with F = x[n] as a (C, H·W) matrix."""
        n, c, h, wd = x.shape
        f = x.reshape(n, c, h * wd)
        return f @ f.transpose(0, 2, 1) / (c * h * wd)

    def gram_grad(self, g_gram, x):
        """d(loss)/dx = (gG + gGᵀ) F / (C·H·W), reshaped like x."""
        n, c, h, wd = x.shape
        f = x.reshape(n, c, h * wd)
        g_sym = g_gram + g_gram.transpose(0, 2, 1)
        return (g_sym @ f / (c * h * wd)).reshape(x.shape)
