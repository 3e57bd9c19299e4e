"""Launch glue for ``kernels/winograd.cu``: Winograd 3x3 convolutions on cuda and cuda-emu.

The same three steps as the NumPy version (``backends/winograd.py``), with the
transforms as kernels and the products as one batched GEMM (``kernels/gemm.cu``)::

    conv2d              U = weight_transform(w)      V = input_transform(x)
                        M[p] = U[p] · V[p]           y = output_transform(M)
    conv2d_grad_input   conv2d of gy with the filter rotated and its channels swapped
                        (weight_transform's adjoint flag), padding 2 - p
    conv2d_grad_weight  V = input_transform(x)       gM = output_grad_transform(gy)
                        dU[p] += gM[p] · V[p]ᵀ       gw = weight_grad_transform(dU)

One image at a time, a band of tile rows at a time, so that V and M stay under
:data:`WORKSPACE_BYTES`.  The tile size m is the ``WINO_M`` of the .cu file.
"""

from __future__ import annotations

import math

import numpy as np

from minidl.backends.gemm import Matrix
from minidl.backends.kernel_runtime import check_fits_int32, i32

#: Upper bound for the V and M buffers of one band of tile rows (bytes each).
WORKSPACE_BYTES = 64 * 2**20


def tile_size(backend) -> int:
    """m of F(m x m, 3x3): ``#define WINO_M`` in kernels/winograd.cu."""
    return backend.runtime.compiled("winograd.cu").define("WINO_M")


def _bands(th: int, tw: int, channels: int, a: int):
    """Tile-row bands (r0, rn) whose (a*a, channels, rn*tw) float32 buffer fits the workspace."""
    rows = max(1, WORKSPACE_BYTES // (a * a * channels * tw * 4))
    return [(r0, min(rows, th - r0)) for r0 in range(0, th, rows)]


def _geometry(backend, out_hw, channels):
    m = tile_size(backend)
    a = m + 2
    th, tw = math.ceil(out_hw[0] / m), math.ceil(out_hw[1] / m)
    bands = _bands(th, tw, channels, a)
    return m, a, tw, bands, max(rn for _, rn in bands) * tw


def conv2d(backend, x, w, padding, adjoint: bool = False):
    """y = conv2d(x, w) for a 3x3 stride-1 conv with ``padding``; with ``adjoint``, w is
    the (C_in, C_out, 3, 3) filter of a forward conv and is used rotated and swapped."""
    xp, run = backend.xp, backend.runtime
    n, c, h, wd = x.shape
    k = w.shape[1] if adjoint else w.shape[0]
    oh, ow = h + 2 * padding[0] - 2, wd + 2 * padding[1] - 2
    _, a, tw, bands, t_max = _geometry(backend, (oh, ow), max(c, k))
    u = xp.empty((a * a, k, c), dtype=np.float32)
    v = xp.empty(a * a * c * t_max, dtype=np.float32)
    prod = xp.empty(a * a * k * t_max, dtype=np.float32)
    y = xp.empty((n, k, oh, ow), dtype=np.float32)
    check_fits_int32("conv2d (winograd)", x.size, y.size, u.size, v.size, prod.size)
    run.launch_1d("winograd_weight_transform", k * c, (w, u, *i32(k, c, int(adjoint))))
    for b in range(n):
        for r0, rn in bands:
            t = rn * tw
            run.launch_1d("winograd_input_transform", c * t,
                          (x, v, *i32(b, c, h, wd, *padding, tw, r0, rn)))  # fmt: skip
            # M[p] (K x T) = U[p] (K x C) · V[p] (C x T), p < a*a
            backend.gemm(Matrix(prod, k, t, batch_stride=k * t),
                         Matrix(u, k, c, batch_stride=k * c),
                         Matrix(v, c, t, batch_stride=c * t), batch=a * a)  # fmt: skip
            run.launch_1d("winograd_output_transform", k * t,
                          (prod, y, *i32(b, k, oh, ow, tw, r0, rn)))  # fmt: skip
    return y


def conv2d_grad_input(backend, gy, w, padding):
    """The adjoint of a 3x3 stride-1 conv with ``padding`` (<= 2): a conv of gy with the
    rotated, channel-swapped filter and padding 2 - p."""
    return conv2d(backend, gy, w, (2 - padding[0], 2 - padding[1]), adjoint=True)


def conv2d_grad_weight(backend, x, gy, padding):
    """gw (C_out, C_in, 3, 3): dU[p] = Σ_tiles gM[p] · V[p]ᵀ, then gw = Gᵀ dU G."""
    xp, run = backend.xp, backend.runtime
    n, c, h, wd = x.shape
    _, k, oh, ow = gy.shape
    _, a, tw, bands, t_max = _geometry(backend, (oh, ow), max(c, k))
    v = xp.empty(a * a * c * t_max, dtype=np.float32)
    g_m = xp.empty(a * a * k * t_max, dtype=np.float32)
    du = xp.zeros((a * a, k, c), dtype=np.float32)
    check_fits_int32("conv2d_grad_weight (winograd)", x.size, gy.size, v.size, g_m.size)
    for b in range(n):
        for r0, rn in bands:
            t = rn * tw
            run.launch_1d("winograd_input_transform", c * t,
                          (x, v, *i32(b, c, h, wd, *padding, tw, r0, rn)))  # fmt: skip
            run.launch_1d("winograd_output_grad_transform", k * t,
                          (gy, g_m, *i32(b, k, oh, ow, tw, r0, rn)))  # fmt: skip
            # dU[p] (K x C) += gM[p] (K x T) · V[p]ᵀ (T x C)
            backend.gemm(Matrix(du, k, c, batch_stride=k * c),
                         Matrix(g_m, k, t, batch_stride=k * t),
                         Matrix(v, c, t, batch_stride=c * t).T, beta=1.0, batch=a * a)  # fmt: skip
    gw = xp.empty((k, c, 3, 3), dtype=np.float32)
    run.launch_1d("winograd_weight_grad_transform", k * c, (du, gw, *i32(k, c)))
    return gw
