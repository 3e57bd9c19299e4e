"""MEC: a stride-1 convolution that copies its input kw times instead of kh*kw times.

im2col (``backends/cpu.py``) copies every input pixel once per kernel offset,
kh*kw times, so that one GEMM can do the whole convolution.  For a stride-1
convolution most of those copies can be skipped (Cho & Brand, "MEC:
Memory-efficient Convolution for Deep Neural Network", 2017).

Flatten the padded image (C, Hp, Wp) into one long row per channel: pixel
(r, col) sits at ``r*Wp + col``.  Output pixel (oh, ow) reads, at kernel offset
(i, j), the padded pixel (oh + i*dh, ow + j*dw), which is flat position

    (oh*Wp + ow) + (i*dh*Wp + j*dw)

its own position plus a constant.  So for one offset, the values all outputs
read, in flat order, are one contiguous slice of the flat image.  MEC copies
only the kw *column* shifts into a matrix

    cols[(j, c), q] = flat[c, q + j*dw]                     (kw*C rows)

and takes the *row* shifts i*dh*Wp as column slices of ``cols``: views, whose
rows lie a constant stride apart, which BLAS reads in place (that stride is its
"leading dimension").  The convolution becomes kh GEMMs, added up::

    y_flat = Σ_i  w_row[i] (C_out x kw*C)  @  cols[:, i*dh*Wp : i*dh*Wp + Ho*Wp]

where ``w_row[i]`` holds row i of every filter.  Each output row comes out Wp
wide, not Wo: its last Wp - Wo values belong to windows that wrapped around into
the next image row, and are dropped.

Against im2col: kw instead of kh*kw copies of the input, the same
multiplications (plus the dropped (Wp - Wo) / Wo), but kh smaller GEMMs whose
results are added.  The copies are what it saves, and they matter most where the
GEMMs are small next to them, i.e. where there are few output channels, such as
VGG16's 64-channel layers at full resolution (on the cpu ``auto`` now runs those
as Winograd, which saves more: see ``winograd.AUTO_RULES``).  Measured (2 cores,
float32, ms, forward, best of 12, im2col vs MEC): 64 -> 64 channels at 224 px 42
vs 28; 128 -> 64 at 112 px 17 vs 13.5; 64 -> 128 at 112 px 11.3 vs 12.4; 512 ->
512 at 28 px 20 vs 22 and at 14 px 5.0 vs 7.5 (the dropped columns are 2 of every
16 there); 3 -> 64 at 224 px 2.6 vs 5.1; and block1_conv1's input gradient (a 64
-> 3 convolution) 4.6 ms with col2im vs 20 with MEC: with 3 channels on either
side the GEMMs are too thin.  Hence :func:`use_mec`'s rule.
"""

from __future__ import annotations

import numpy as np

from minidl.backends import threads, winograd

#: ``auto`` picks MEC over im2col on the cpu for stride-1 convolutions with at
#: least MIN_CHANNELS input and output channels (fewer make its GEMMs too thin)
#: and at most MAX_OUT_CHANNELS output channels: the copies it saves cost in
#: proportion to C_in, the multiplications in proportion to C_in * C_out, so the
#: saving matters most where C_out is small.
MIN_CHANNELS, MAX_OUT_CHANNELS = 16, 64

#: Largest ``cols`` matrix, and largest output band, built at once (bytes).
#: Bigger images are done a band of output rows at a time, as im2col is.  The
#: output band is kept small so that the kh partial products add up in cache:
#: 64 -> 64 channels at 224 px took 33 ms with 4 MB bands, 43 ms with 16 MB.
COLS_BYTES = 16 * 2**20
OUTPUT_BYTES = 4 * 2**20


def supports(stride) -> bool:
    """MEC computes stride-1 convolutions (any kernel size, padding and dilation)."""
    return tuple(stride) == (1, 1)


def use_mec(in_channels, out_channels, stride) -> bool:
    """Whether the cpu backend runs a convolution as MEC, following MINIDL_CONV
    (``winograd.algorithm()``); asked after Winograd has declined."""
    choice = winograd.algorithm()
    if not supports(stride) or choice in ("im2col", "winograd"):
        return False
    if choice == "mec":
        return True
    return MIN_CHANNELS <= min(in_channels, out_channels) and out_channels <= MAX_OUT_CHANNELS


def shifted_columns(flat, start, out, kw, dw):
    """Fill ``out`` (kw, C, span) with ``out[j, c, q] = flat[c, start + q + j*dw]``.

    Past the end of ``flat`` it holds zeros; only the dropped wrap-around
    outputs of the last row read there.
    """
    span = out.shape[2]
    for j in range(kw):
        part = flat[:, start + j * dw : start + j * dw + span]
        threads.copy(out[j, :, : part.shape[1]], part)
        out[j, :, part.shape[1] :] = 0
    return out.reshape(-1, span)


def conv2d(x, w, padding, dilation):
    """Stride-1 convolution (no bias), by the kh GEMMs of the module docstring:
    (N, C_in, H, W) * (C_out, C_in, kh, kw) -> (N, C_out, Ho, Wo)."""
    n, c, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    (ph, pw), (dh, dw) = padding, dilation
    hp, wp = h + 2 * ph, wd + 2 * pw
    ho, wo = hp - (kh - 1) * dh, wp - (kw - 1) * dw
    dtype = np.result_type(x, w)
    itemsize = np.dtype(dtype).itemsize
    # w_row[i][k, (j, c)] = w[k, c, i, j]: row i of every filter, as a matrix.
    w_row = np.ascontiguousarray(w.astype(dtype, copy=False).transpose(2, 0, 3, 1))
    w_row = w_row.reshape(kh, c_out, kw * c)
    reach = (kh - 1) * dh  # input rows below a band of output rows that it reads
    rows = max(1, min(ho, OUTPUT_BYTES // (c_out * wp * itemsize),
                      COLS_BYTES // (kw * c * wp * itemsize) - reach))  # fmt: skip
    # Buffers reused by every band (fresh arrays for each band measured slower).
    cols_buffer = np.empty(kw * c * (rows + reach) * wp, dtype=dtype)
    acc_buffer, product_buffer = np.empty((2, c_out * rows * wp), dtype=dtype)
    padded = np.zeros((c, hp, wp), dtype=dtype)
    flat = padded.reshape(c, hp * wp)
    y = np.empty((n, c_out, ho, wo), dtype=dtype)
    for b in range(n):
        threads.copy(padded[:, ph : ph + h, pw : pw + wd], x[b])
        for r0 in range(0, ho, rows):
            r1 = min(r0 + rows, ho)
            span, size = (r1 - r0 + reach) * wp, (r1 - r0) * wp  # input / output flat lengths
            cols = cols_buffer[: kw * c * span].reshape(kw, c, span)
            cols = shifted_columns(flat, r0 * wp, cols, kw, dw)
            y_flat = acc_buffer[: c_out * size].reshape(c_out, size)
            product = product_buffer[: c_out * size].reshape(c_out, size)
            threads.matmul(w_row[0], cols[:, :size], y_flat)
            for i in range(1, kh):
                shift = i * dh * wp  # kernel row i: the same columns, i*dh image rows on
                threads.add(y_flat, threads.matmul(w_row[i], cols[:, shift : shift + size], product))
            threads.copy(y[b, :, r0:r1], y_flat.reshape(c_out, r1 - r0, wp)[:, :, :wo])
    return y
