"""Winograd minimal filtering: 3x3 stride-1 convolutions with fewer multiplications.

im2col spends 9 multiplications per (input channel, output channel, output pixel).
Winograd (Lavin & Gray, 2015) cuts the output into m x m *tiles* and computes each
tile from an (m+2) x (m+2) input tile with only (m+2)^2 multiplications:

    F(2x2, 3x3): 16 products for 4 outputs   (36 with im2col)  2.25x fewer
    F(4x4, 3x3): 36 products for 16 outputs  (144 with im2col)   4x fewer

The trick is the one behind fast polynomial multiplication.  In one dimension, a
3-tap correlation of a tile ``d`` (m+2 values) giving m outputs is

    y = Aᵀ [ (G g) ⊙ (Bᵀ d) ]        ⊙ = elementwise product, m+2 of them

where ``Bᵀ d`` and ``G g`` evaluate d and the filter g at m+2 points and ``Aᵀ``
interpolates the product back.  Nesting it for rows and columns gives 2-D tiles:

    Y = Aᵀ [ U ⊙ V ] A      U = G g Gᵀ   (the filter, transformed once)
                            V = Bᵀ d B   (each input tile, transformed)

Summed over input channels c, the elementwise product becomes, for each of the
(m+2)^2 positions (p, q) of the transformed tile, one matrix product::

    M[p, q] (C_out x tiles) = U[p, q] (C_out x C_in) @ V[p, q] (C_in x tiles)

so the arithmetic is a batch of 16 (m=2) or 36 (m=4) GEMMs, done by BLAS, and the
transforms are small matrix products on either side (:func:`transform`).

The three backend methods are all this one pattern:

* ``conv2d``: transform input and filter, batched GEMM, transform back.
* ``conv2d_grad_input``: the adjoint of a stride-1 3x3 conv is the 3x3 conv of gy
  with the filter rotated by 180 degrees and its in/out channels swapped, padding
  ``2 - p``: Winograd forward again (the rotated filters are never made: see
  :func:`weight_transform`).
* ``conv2d_grad_weight``: the adjoint of each step, in reverse order:
  ``dU[p, q] = Σ_tiles (A gY Aᵀ)[p, q] @ V[p, q]ᵀ`` and ``gw = Gᵀ dU G``.

Precision: the points 0, ±1, ±2 of F(4x4) make ``Bᵀ`` and ``Aᵀ`` entries up to 8,
so float32 rounding errors grow.  Against float64, on a 64 -> 64 channel layer, the
largest error relative to the largest output is 4.3e-7 for im2col, 3.8e-7 for
F(2x2) and 5.0e-6 for F(4x4) (``tests/test_winograd.py`` measures it).  In float64
all are exact to ~1e-14, so gradient checks pass unchanged.
"""

from __future__ import annotations

import math
import os

import numpy as np
from numpy.lib.stride_tricks import as_strided

from minidl.backends import setting, threads

#: Output tile sizes m with matrices below: F(2x2, 3x3) and F(4x4, 3x3).
TILES = (2, 4)

#: The tile size the cpu backend uses (kernels/winograd.cu has its own WINO_M).
TILE = 4

#: Values of the environment variable MINIDL_CONV, which picks the algorithm of the
#: stride-1 convolutions (read at each call, so a lesson can switch): ``im2col``
#: always, ``winograd`` whenever it applies (3x3), ``mec`` whenever it applies (the
#: cpu's MEC, ``backends/mec.py``; the CUDA kernels have none and use im2col),
#: ``auto`` (default) each where it is faster: Winograd with enough channels and
#: output pixels that the saved products outweigh transforming the tiles and the
#: filters, then on the cpu MEC by ``mec.use_mec``'s rule, else im2col.
ALGORITHMS = ("im2col", "winograd", "mec", "auto")

#: ``auto``'s rule per device: (fewest channels, fewest output pixels) for Winograd.
#: "Channels" is the smaller of the input and output channel counts: the tile
#: transforms cost in proportion to each, the saved products to their product.
#:
#: cuda-emu (2 cores): Winograd is 3-4x faster from 32x32 pixels on (64 -> 64
#: channels at 64 px, forward + input gradient: 1.3 s vs 5.6 s of CPU time; a tie
#: at 16 px with 256 channels).
#: cpu (2 cores; one process, the rules taking turns, median of 10-16 turns):
#: from 64 channels instead of 128, the Gatys loss at 256 px takes 0.93-0.96 of
#: the time, VGG16's input gradient 0.94-0.97 at 224 px and 0.93 at 512 px.  The
#: 64-channel layers in isolation, forward / input gradient in ms: 64 -> 64 at
#: 256 px 26 / 26 against MEC's 32 / 32 and im2col's 34 / 34; 64 -> 128 at 128 px
#: 11 / 13 against 15 / 16.  With 3 channels (VGG16's first layer) the transforms
#: cost 8x what Winograd saves (24 vs 3 ms).  The pixel threshold, measured in the
#: network: VGG16 at 224 px, whose block4 is 28 px, takes 0.96 of the time with
#: 28x28 as with 32x32 (two runs, medians of 12-14 turns), and 0.97-1.04 with
#: 20x20 (block5, 14 px, then too: 512 -> 512 at 14 px, forward / input gradient,
#: 9.9 / 11.1 ms against im2col's 6.3 / 6.7).  (Before ``threads.matmul`` split
#: the products between the cores, Winograd's many small products made 64
#: channels a tie and the rule was 128 channels, 32x32 pixels.)
#: cuda (one H200, batch 1, `minidl bench --compare-torch --device cuda`, wall time of
#: the VGG16 input gradient, best of 10, with the double-buffered gemm.cu): at 512 px
#: 9.0 ms with this rule vs 26.6 ms with im2col everywhere; at 224 px (block4/5 under
#: 32x32, so im2col) 7-12 ms either way: Python's launches are most of it.  On the
#: kernel bench's 128 -> 128 layer at 4 x 112 x 112, Winograd takes 0.36 ms and im2col
#: 1.34 ms (cuDNN 0.46).  A 64x64 threshold instead (three interleaved rounds, best of
#: 10 each, ms): VGG16 at 224 px 7.2-11.6 vs 9.9-10.4, at 512 px 9.7-14.5 vs 9.0-11.5;
#: Gatys loss at 256 px 11.1-11.9 vs 11.0-11.7, at 512 px 12.9-13.0 vs 13.9-17.1: no
#: clear winner on a host-bound GPU, so the rule stays 32x32.
AUTO_RULES = {"cpu": (64, 28 * 28), "cuda": (16, 32 * 32), "cuda-emu": (16, 32 * 32)}

#: Largest transformed-tile buffer (V or M) built at once, in bytes; bigger
#: convolutions are done a band of tile rows at a time, as im2col is.  Each band
#: costs 36 products per slice of filters, so bands must not be tiny (2 MB bands
#: once made VGG16 3x slower).  With the 64-channel rule above, 8 MB bands are as
#: fast as 32 MB ones (the Gatys loss at 256 px, median of 10 turns: 0.93 vs 0.94
#: of the old rule's time) and lower the peaks (resident, weights included, old
#: rule and 32 MB -> this rule and 8 MB): the Gatys loss at 256 px 285 -> 279 MB,
#: at 512 px 703 -> 650 MB; VGG16 at 512 px 526 -> 506 MB.
WORKSPACE_BYTES = 8 * 2**20

#: Largest slice of transformed filters U built at once, in bytes.  U is 4x the
#: size of the filters (36 numbers per 3x3 filter): 38 MB for VGG16's 512 -> 512
#: layers.  Built a slice of output channels at a time, U stays small: VGG16's
#: peak at 512 px (resident, weights included) was in block4's backward pass,
#: 546 MB with whole U, 508 with 16 MB slices, 491 with 8 MB.  Each slice's
#: products fill its rows of the band's M, and the output tiles are made from
#: whole M, once per band (once per slice took 1.02-1.06x the time on the
#: 512-channel layers at 28-32 px, with the same peaks).  But each band of tiles
#: (and each image) needs every slice, so a convolution done in several bands
#: builds whole U once instead of its slices once per band: VGG16 at 512 px,
#: whose block4 takes 3 bands, ran 0.93x the time with whole U there (one
#: process, taking turns, median of 6), and its peak rose 497 -> 525 MB.
FILTER_BYTES = 8 * 2**20

#: Largest copy of strided input tiles made at once by :func:`transform` (bytes).
#: Without a limit the copy is as big as the transformed tiles V (up to
#: WORKSPACE_BYTES), and both were alive at VGG16's memory peak at 512 px.
GATHER_BYTES = 8 * 2**20

# The matrices of Lavin & Gray (2015), in float64: (Bᵀ, G, Aᵀ) for each m.
_MATRICES = {
    2: (
        [[1, 0, -1, 0],
         [0, 1, 1, 0],
         [0, -1, 1, 0],
         [0, 1, 0, -1]],
        [[1, 0, 0],
         [1 / 2, 1 / 2, 1 / 2],
         [1 / 2, -1 / 2, 1 / 2],
         [0, 0, 1]],
        [[1, 1, 1, 0],
         [0, 1, -1, -1]],
    ),
    4: (
        [[4, 0, -5, 0, 1, 0],
         [0, -4, -4, 1, 1, 0],
         [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0],
         [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0],
         [-1 / 6, -1 / 6, -1 / 6],
         [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6],
         [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0],
         [0, 1, -1, 2, -2, 0],
         [0, 1, 1, 4, 4, 0],
         [0, 1, -1, 8, -8, 1]],
    ),
}  # fmt: skip


def matrices(tile: int, dtype=np.float64):
    """``(Bᵀ, G, Aᵀ)`` of F(tile x tile, 3x3): shapes (a, a), (a, 3), (tile, a), a = tile + 2."""
    if tile not in _MATRICES:
        raise ValueError(f"winograd: tile must be one of {TILES}, got {tile!r}")
    return tuple(np.array(m, dtype=dtype) for m in _MATRICES[tile])


def supports(kernel_hw, stride, padding, dilation) -> bool:
    """True for the convolutions Winograd F(m x m, 3x3) computes here: 3x3, stride 1,
    dilation 1, padding <= 2 (so that the input gradient's padding 2 - p is >= 0)."""
    return (
        tuple(kernel_hw) == (3, 3)
        and tuple(stride) == (1, 1)
        and tuple(dilation) == (1, 1)
        and max(padding) <= 2
    )


def algorithm() -> str:
    """The MINIDL_CONV setting: ``"im2col"``, ``"winograd"`` or ``"auto"`` (unset or empty)."""
    value = os.environ.get("MINIDL_CONV", "").strip().lower() or "auto"
    if value not in ALGORITHMS:
        raise ValueError(
            f"MINIDL_CONV must be one of {', '.join(ALGORITHMS)}, got {os.environ['MINIDL_CONV']!r}"
        )
    return value


def conv_algorithm(name: str):
    """``with conv_algorithm(name):`` runs the block with ``MINIDL_CONV=name``, then puts
    back what was there before."""
    if name not in ALGORITHMS:
        raise ValueError(f"conv_algorithm: name must be one of {', '.join(ALGORITHMS)}, got {name!r}")
    return setting("MINIDL_CONV", name)


def use_winograd(device, channels, out_hw, kernel_hw, stride, padding, dilation) -> bool:
    """Whether a convolution on ``device`` (or one of its gradients) runs as Winograd,
    following MINIDL_CONV.  ``channels`` is the smaller of its input and output
    channel counts, ``out_hw`` the pixels it writes per image."""
    choice = algorithm()
    if choice in ("im2col", "mec") or not supports(kernel_hw, stride, padding, dilation):
        return False
    if choice == "winograd":
        return True
    min_channels, min_pixels = AUTO_RULES[device]
    return channels >= min_channels and out_hw[0] * out_hw[1] >= min_pixels


#: kron(mat, mat) of each matrix :func:`transform` has met, by its shape, dtype and values.
_KRONS = {}


def _kron(mat):
    """``np.kron(mat, mat)``, computed once per matrix (0.1 ms each: 7 ms per Gatys loss evaluation)."""
    key = (mat.shape, mat.dtype.str, mat.tobytes())
    if key not in _KRONS:
        _KRONS[key] = np.kron(mat, mat)
    return _KRONS[key]


def transform(mat, z):
    """``out[p, q, ...] = Σ_ij mat[p, i] · z[i, j, ...] · mat[q, j]``, i.e. mat · z · matᵀ
    for every trailing index at once; returns an (r*r, ...) array, (p, q) flattened.

    Flattened, the two-sided product of an s x s tile is one (r*r, s*s) matrix,
    ``kron(mat, mat)``, so all the tiles are transformed by one GEMM: BLAS does
    it faster than two one-sided products, and it keeps the code short.
    """
    r, s = mat.shape
    rest = z.shape[2:]
    kron = _kron(mat)
    if z.flags.c_contiguous or z.ndim < 3:
        return threads.matmul(kron, z.reshape(s * s, -1)).reshape(r * r, *rest)
    # A strided view (the overlapping input tiles) must be copied into a matrix
    # first: a share of axis 2 (channels) at a time, so that the copy stays small.
    out = np.empty((r * r, *rest), dtype=np.result_type(kron, z))
    step = max(1, GATHER_BYTES // max(1, z[:, :, :1].size * z.itemsize))
    for c0 in range(0, rest[0], step):
        part = threads.contiguous(z[:, :, c0 : c0 + step], axis=2)
        # (out[:, c0:c1] flattened is a view: its rows lie one channel block apart)
        threads.matmul(kron, part.reshape(s * s, -1), out[:, c0 : c0 + step].reshape(r * r, -1))
    return out


def output_tiles(at, m):
    """Aᵀ M A for every tile of the products M (a*a, K): (K, m*m), tile by tile.

    :func:`transform` would give (m*m, K): each output pixel of every tile, one
    row per pixel position.  Here each tile's m*m outputs lie together, a run of
    m for each of its rows, as they lie in the image: so they go there as whole
    runs (:func:`_runs`).  BLAS reads M transposed in place.
    """
    a2 = m.shape[0]
    return threads.matmul(m.reshape(a2, -1).T, _kron(at).T)


def _runs(array):
    """``array`` with each run along its last axis seen as one element: (..., n) -> (...).

    NumPy copies an array element by element, and a copy that reorders the axes
    above the last one would move each float on its own.  Seen as one n-float
    element (a NumPy ``void`` of n * itemsize bytes), a run moves in one go: the
    output tiles of 64 channels at 256 px go to the image in 1.5 ms instead of
    7.0 (float32 runs of 4, one thread).  The last axis must be contiguous.
    """
    return array.view(np.dtype((np.void, array.shape[-1] * array.itemsize)))[..., 0]


def _tile_geometry(out_hw, channels, tile, itemsize):
    """Tiles per side (th, tw) and how many tile rows fit the workspace at once."""
    th, tw = math.ceil(out_hw[0] / tile), math.ceil(out_hw[1] / tile)
    a = tile + 2
    band = max(1, WORKSPACE_BYTES // (a * a * channels * tw * itemsize))
    return th, tw, band


def _input_tiles(xp, tile, r0, r1, tw):
    """Input tiles of tile rows r0..r1 of a padded image ``xp`` (C, H_pad, W_pad),
    as a view d[i, j, c, r, t] = xp[c, r*m + i, t*m + j] (tiles overlap by 2)."""
    a, s_c, s_h, s_w = tile + 2, *xp.strides
    return as_strided(
        xp[:, r0 * tile :],
        shape=(a, a, xp.shape[0], r1 - r0, tw),
        strides=(s_h, s_w, s_c, tile * s_h, tile * s_w),
        writeable=False,
    )


def _padded(x, padding, th, tw, tile):
    """x (C, H, W) in a zero image big enough for th x tw whole tiles (and their halo).

    Only the frame around x is zeroed: zeroing all of it first, then copying x
    over it, wrote the image twice (64 channels at 256 px: 1.9 vs 1.1 ms).  Each
    thread fills a share of the channels.
    """
    c, h, wd = x.shape
    ph, pw = padding
    out = np.empty((c, th * tile + 2, tw * tile + 2), dtype=x.dtype)
    # Rows/cols past the tiles' reach (a padding > 2 would do that) are never read.
    hh, ww = min(h, out.shape[1] - ph), min(wd, out.shape[2] - pw)

    def fill(c0, c1):  # channels c0..c1
        part = out[c0:c1]
        part[:, :ph] = part[:, ph + hh :] = 0
        part[:, :, :pw] = part[:, :, pw + ww :] = 0
        np.copyto(part[:, ph : ph + hh, pw : pw + ww], x[c0:c1, :hh, :ww])

    threads.for_each_part(fill, c, out.nbytes)
    return out


def weight_transform(w, tile, adjoint=False):
    """U[p, q] = G g Gᵀ for every (c_out, c_in) filter: (a*a, C_out, C_in).

    Each filter's 9 numbers are one row of ``w.reshape(-1, 9)``, so ``kron(G, G)``
    times that matrix's transpose transforms every filter in one GEMM.  BLAS reads
    the transpose in place: no copy of ``w`` into (3, 3, C_out, C_in) order first,
    which took a third of the time (512 -> 512 filters: 5.1 ms instead of 8.0).

    ``adjoint=True`` transforms :func:`adjoint_filters` of w instead, the filters
    of the input gradient, without making them: a filter rotated by 180 degrees
    is its 9 numbers in reverse order, so ``kron(G, G)`` with its 9 columns
    reversed transforms it; and swapping the channel axes is a transposed view,
    (a*a, C_in, C_out), which BLAS also reads in place.
    """
    _, g, _ = matrices(tile, w.dtype)
    c_out, c_in = w.shape[:2]
    kron = _kron(g)[:, ::-1] if adjoint else _kron(g)
    rows = threads.contiguous(w).reshape(c_out * c_in, 9)  # (a copy, on every core, for a slice)
    u = threads.matmul(kron, rows.T).reshape(-1, c_out, c_in)
    return u.transpose(0, 2, 1) if adjoint else u


def conv2d(x, w, padding, tile=None, adjoint=False):
    """3x3 stride-1 convolution (no bias): (N, C_in, H, W) * (C_out, C_in, 3, 3) -> (N, C_out, Ho, Wo).

    ``adjoint=True`` convolves with :func:`adjoint_filters` of w instead: w is then
    the (C_out, C_in, 3, 3) filters of the convolution whose input gradient this
    is, x has C_out channels and the result C_in.
    """
    tile = tile or TILE
    n, c, h, wd = x.shape
    c_out = w.shape[1] if adjoint else w.shape[0]
    dtype = np.result_type(x, w)
    bt, _, at = matrices(tile, dtype)
    ho, wo = h + 2 * padding[0] - 2, wd + 2 * padding[1] - 2
    itemsize = np.dtype(dtype).itemsize
    th, tw, band = _tile_geometry((ho, wo), max(c, c_out), tile, itemsize)
    a = tile + 2
    w = w.astype(dtype, copy=False)
    # Output channels per slice of U (see FILTER_BYTES): one slice when U is small,
    # or when several bands (or images) would each build every slice again.
    bands = n * math.ceil(th / band)
    step = c_out if bands > 1 else max(1, FILTER_BYTES // (a * a * c * itemsize))

    def filters(k0, k1):  # U of output channels k0..k1
        return weight_transform(w[:, k0:k1] if adjoint else w[k0:k1], tile, adjoint)

    u = filters(0, c_out) if step >= c_out else None
    y = np.empty((n, c_out, ho, wo), dtype=dtype)
    for b in range(n):
        xp = _padded(x[b].astype(dtype, copy=False), padding, th, tw, tile)
        for r0 in range(0, th, band):
            r1 = min(r0 + band, th)
            v = transform(bt, _input_tiles(xp, tile, r0, r1, tw)).reshape(a * a, c, -1)
            m = np.empty((a * a, c_out, v.shape[2]), dtype=dtype)
            for k0 in range(0, c_out, step):  # the batch of GEMMs, a slice of U at a time
                k1 = min(k0 + step, c_out)
                threads.matmul(u if u is not None else filters(k0, k1), v, m[:, k0:k1])
            del v  # (so that at most two band-sized buffers are alive at once)
            out = output_tiles(at, m).reshape(c_out, r1 - r0, tw, tile, tile)
            del m
            _place(out, y[b, :, r0 * tile : r1 * tile])
    return y


def _place(tiles, dest):
    """Write output tiles (K, R, T, m, m) into the image rows ``dest`` they cover,
    (K, <= R*m, <= T*m).

    tiles[k, r, t, i] is a run of m outputs, the pixels (r*m + i, t*m .. t*m + m - 1)
    of dest[k]: whole tiles go as whole runs (:func:`_runs`).  Where the image is
    no whole number of tiles, the last tile row and column are cut to what it has.
    """
    tile = tiles.shape[-1]
    k, rows, cols = dest.shape
    r_full, t_full = rows // tile, cols // tile
    whole = dest[:, : r_full * tile, : t_full * tile].reshape(k, r_full, tile, t_full, tile)
    threads.copy(_runs(whole), _runs(tiles[:, :r_full, :t_full]).transpose(0, 1, 3, 2))
    extra_cols, extra_rows = cols - t_full * tile, rows - r_full * tile
    if extra_cols:  # right edge: the first columns of each tile row's last tile
        edge = dest[:, : r_full * tile, t_full * tile :].reshape(k, r_full, tile, extra_cols)
        edge[...] = tiles[:, :r_full, t_full, :, :extra_cols]
    if extra_rows:  # bottom edge: the first rows of the last tile row
        last = tiles[:, r_full, :, :extra_rows].transpose(0, 2, 1, 3)  # (K, rows, T, m)
        dest[:, r_full * tile :] = last.reshape(k, extra_rows, -1)[:, :, :cols]


def adjoint_filters(w):
    """The filters of a stride-1 convolution's input gradient: each (C_out, C_in, kh, kw)
    filter rotated by 180 degrees, and the channel axes swapped -> (C_in, C_out, kh, kw).

    With them, gx = conv2d(gy, adjoint_filters(w), padding k - 1 - p): the input
    gradient is itself a ("full") convolution.
    """
    return threads.contiguous(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), axis=0)


def conv2d_grad_input(gy, w, input_hw, padding, tile=None):
    """Adjoint of :func:`conv2d` (= conv_transpose2d): a Winograd conv of gy with the
    filter rotated 180 degrees, channels swapped, and padding 2 - p on each side."""
    ph, pw = padding
    if ph > 2 or pw > 2:
        raise ValueError(f"winograd.conv2d_grad_input: padding must be <= 2, got {tuple(padding)}")
    gx = conv2d(gy, w, (2 - ph, 2 - pw), tile, adjoint=True)
    if gx.shape[2:] != tuple(input_hw):
        raise ValueError(
            f"winograd.conv2d_grad_input: gy {tuple(gy.shape)} is not the output of "
            f"input_hw={tuple(input_hw)} with padding {tuple(padding)}"
        )
    return gx


def conv2d_grad_weight(x, gy, padding, tile=None):
    """gw (C_out, C_in, 3, 3) of :func:`conv2d`: the Winograd steps run backwards.

    For each tile, Y = Aᵀ (U ⊙ V) A, so dU = Σ_tiles (A gY Aᵀ) ⊙ V -- summed over
    input tiles by one GEMM per (p, q) -- and gw = Gᵀ dU G.
    """
    tile = tile or TILE
    n, c = x.shape[:2]
    c_out, ho, wo = gy.shape[1:]
    dtype = np.result_type(x, gy)
    bt, g, at = matrices(tile, dtype)
    th, tw, band = _tile_geometry((ho, wo), max(c, c_out), tile, np.dtype(dtype).itemsize)
    a = tile + 2
    du = np.zeros((a * a, c_out, c), dtype=dtype)
    for b in range(n):
        xp = _padded(x[b].astype(dtype, copy=False), padding, th, tw, tile)
        # gy in whole tiles, zero past (ho, wo): those outputs do not exist.
        gyp = np.zeros((c_out, th * tile, tw * tile), dtype=dtype)
        gyp[:, :ho, :wo] = gy[b]
        for r0 in range(0, th, band):
            r1 = min(r0 + band, th)
            v = transform(bt, _input_tiles(xp, tile, r0, r1, tw)).reshape(a * a, c, -1)
            # gY[i, j, k, r, t] = gy of output pixel ((r0 + r)*m + i, t*m + j)
            g_tiles = gyp[:, r0 * tile : r1 * tile].reshape(c_out, r1 - r0, tile, tw, tile)
            g_m = transform(at.T, g_tiles.transpose(2, 4, 0, 1, 3)).reshape(a * a, c_out, -1)
            du += threads.matmul(g_m, v.transpose(0, 2, 1))
    gw = transform(g.T, du.reshape(a, a, c_out, c))  # (9, C_out, C_in)
    return np.ascontiguousarray(gw.reshape(3, 3, c_out, c).transpose(2, 3, 0, 1))
