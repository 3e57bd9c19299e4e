"""Resampling: ``interpolate`` (nearest, bilinear) and ``upsample_nearest``.

Resizing is a gather along each axis: output pixel ``dst`` reads input pixel(s)
at a source position ``src`` computed by PyTorch's rules (below).  Written with
Tensor indexing and products, so autograd supplies the backward pass: each
input pixel receives the gradient of every output that read it, times the
weight it was read with.
"""

from __future__ import annotations

import math

import numpy as np

from minidl.functional.checks import check_4d
from minidl.tensor import Tensor
from minidl.tensor_ops import as_tensor_like


def upsample_nearest(input, scale_factor: int = 2) -> Tensor:
    """Nearest-neighbour upsampling by an integer factor.

    It is broadcasting: view each pixel as a 1×1 block and stretch it to s×s, so
    the backward pass (sum over each block) comes from autograd.
    """
    check_4d("upsample_nearest", "input", input)
    if not isinstance(scale_factor, (int, np.integer)) or scale_factor < 1:
        raise ValueError(
            f"upsample_nearest: scale_factor must be a positive int, got {scale_factor!r}"
        )
    n, c, h, w = input.shape
    s = int(scale_factor)
    block = Tensor(input.xp.ones((1, 1, 1, s, 1, s), dtype=input.dtype), device=input.device)
    return (input.reshape(n, c, h, 1, w, 1) * block).reshape(n, c, h * s, w * s)


def _sizes_and_scales(op, input, size, scale_factor):
    """Output (h, w) and, per axis, the step in input pixels per output pixel.

    As in PyTorch: a given ``scale_factor`` s makes the output floor(in·s) and the
    step 1/s; a given ``size`` makes the step in/out.
    """
    shapes = f"input {input.shape}"
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor ({shapes})")
    in_hw = input.shape[2:]
    if size is not None:
        out_hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if len(out_hw) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in out_hw):
            raise ValueError(
                f"{op}: size must be a positive int or a pair of them, got {size!r} ({shapes})"
            )
        return tuple(int(s) for s in out_hw), [i / o for i, o in zip(in_hw, out_hw)]
    factors = (scale_factor,) * 2 if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
    if len(factors) != 2 or not all(isinstance(f, (int, float)) and f > 0 for f in factors):
        raise ValueError(
            f"{op}: scale_factor must be a positive number or a pair of them, got {scale_factor!r} ({shapes})"
        )
    out_hw = tuple(math.floor(i * f) for i, f in zip(in_hw, factors))
    if min(out_hw) < 1:
        raise ValueError(
            f"{op}: scale_factor {scale_factor!r} gives an empty output {out_hw} ({shapes})"
        )
    return out_hw, [1 / f for f in factors]


def _nearest_source(size_in, size_out, step):
    """PyTorch's nearest: src = min(floor(dst·step), in - 1), in float32 as PyTorch computes it."""
    src = np.floor(np.arange(size_out, dtype=np.float32) * np.float32(step)).astype(np.int64)
    return np.minimum(src, size_in - 1)


def _linear_source(size_in, size_out, step, align_corners):
    """The two neighbours each output reads and their weights (w0 + w1 = 1).

    align_corners=False: pixel centres line up, src = (dst + 0.5)·step - 0.5,
    clamped at 0; align_corners=True: the corner pixels line up,
    src = dst·(in - 1)/(out - 1).
    """
    dst = np.arange(size_out, dtype=np.float64)
    if align_corners:
        src = dst * ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0)
    else:
        src = np.maximum((dst + 0.5) * step - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    w1 = src - i0
    return i0, i1, 1.0 - w1, w1


def _take(x: Tensor, index: np.ndarray, axis: int) -> Tensor:
    """x with ``index`` applied along ``axis`` (2 or 3) of an NCHW tensor."""
    return x[(slice(None),) * axis + (x.xp.asarray(index),)]


def _along(weights: np.ndarray, axis: int, like: Tensor) -> Tensor:
    """Per-position weights shaped to broadcast along ``axis`` of an NCHW tensor."""
    shape = [1, 1, 1, 1]
    shape[axis] = len(weights)
    return as_tensor_like(weights.reshape(shape), like)


def interpolate(
    input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None
) -> Tensor:
    """Resize an (N, C, H, W) tensor as ``torch.nn.functional.interpolate``.

    mode 'nearest' or 'bilinear' (``align_corners`` False by default, as PyTorch
    without its warning).  Give ``size`` (int or (h, w)) or ``scale_factor``.
    """
    op = "interpolate"
    check_4d(op, "input", input)
    if mode not in ("nearest", "bilinear"):
        raise ValueError(
            f"{op}: mode must be 'nearest' or 'bilinear', got {mode!r} (input {input.shape})"
        )
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{op}: align_corners only applies to mode 'bilinear', not {mode!r}")
    out_hw, steps = _sizes_and_scales(op, input, size, scale_factor)
    if mode == "nearest" and isinstance(scale_factor, int):
        return upsample_nearest(input, scale_factor)  # the same pixels, a cheaper backward
    y = input
    for axis, size_out, step in zip((2, 3), out_hw, steps):
        size_in = input.shape[axis]
        if mode == "nearest":
            y = _take(y, _nearest_source(size_in, size_out, step), axis)
        else:
            i0, i1, w0, w1 = _linear_source(size_in, size_out, step, bool(align_corners))
            y = _take(y, i0, axis) * _along(w0, axis, y) + _take(y, i1, axis) * _along(w1, axis, y)
    return y
