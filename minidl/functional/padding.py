"""Padding: ``pad`` (constant, reflect, replicate) and ``reflection_pad2d``.

``pad`` follows ``torch.nn.functional.pad``: ``pad`` lists (before, after) pairs
starting from the LAST axis, so ``(left, right, top, bottom)`` pads W, then H.

Constant padding is a Function (write into a filled array; the gradient is the
middle of the output gradient).  Reflect and replicate padding are integer-array
indexing with mirrored or clamped indices, so autograd scatters the gradient of
every copy back onto its source pixel.
"""

from __future__ import annotations

import numpy as np

from minidl.autograd import Function
from minidl.functional.checks import check_4d, check_tensor
from minidl.tensor import Tensor
from minidl.tensor_ops import array_module


class _ConstantPad(Function):
    def forward(self, x, widths, value):
        self.middle = tuple(
            slice(before, before + size) for (before, _), size in zip(widths, x.shape)
        )
        return array_module(x).pad(x, widths, mode="constant", constant_values=value)

    def backward(self, g):
        return g[self.middle]


def _reflected(size: int, before: int, after: int) -> np.ndarray:
    """Indices -before .. size+after-1 mirrored into 0..size-1 (the edge is not repeated)."""
    i = np.abs(np.arange(-before, size + after))  # mirror at the start
    return (size - 1) - np.abs((size - 1) - i)  # mirror at the end


def _replicated(size: int, before: int, after: int) -> np.ndarray:
    """Indices -before .. size+after-1 clamped into 0..size-1 (the edge repeats)."""
    return np.clip(np.arange(-before, size + after), 0, size - 1)


_INDEXED_MODES = {"reflect": _reflected, "replicate": _replicated}


def _gather_pad(x: Tensor, sides: list, mode: str) -> Tensor:
    """Pad the last len(sides) axes by indexing each with mirrored/clamped indices."""
    indices = _INDEXED_MODES[mode]
    for k, (before, after) in enumerate(sides):
        axis = x.ndim - 1 - k
        index = (slice(None),) * axis + (x.xp.asarray(indices(x.shape[axis], before, after)),)
        x = x[index]
    return x


def pad(input, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad ``input`` as ``torch.nn.functional.pad``.

    ``pad`` = (before, after) for the last axis, then for the one before it, ...
    ``mode``: 'constant' (fill with ``value``, any number of axes), 'reflect'
    (mirror without repeating the edge) or 'replicate' (repeat the edge), both
    on the last one or two axes.
    """
    op = "pad"
    check_tensor(op, "input", input)
    widths = tuple(pad) if isinstance(pad, (tuple, list)) else None
    if not widths or len(widths) % 2 or not all(isinstance(p, (int, np.integer)) for p in widths):
        raise TypeError(f"{op}: pad must be a tuple of (before, after) int pairs, got {pad!r}")
    sides = [(int(widths[i]), int(widths[i + 1])) for i in range(0, len(widths), 2)]
    if len(sides) > input.ndim:
        raise ValueError(
            f"{op}: pad {pad!r} pads {len(sides)} axes but input {input.shape} has {input.ndim}"
        )
    if min(min(s) for s in sides) < 0:
        raise ValueError(f"{op}: pad must be >= 0, got {pad!r} (input {input.shape})")
    if mode == "constant":
        padded = [(0, 0)] * (input.ndim - len(sides)) + sides[::-1]
        return _ConstantPad.apply(input, widths=padded, value=value)
    if mode not in _INDEXED_MODES:
        raise ValueError(f"{op}: mode must be 'constant', 'reflect' or 'replicate', got {mode!r}")
    if len(sides) > 2 or input.ndim < len(sides) + 1:
        raise ValueError(
            f"{op}: mode {mode!r} pads the last 1 or 2 axes of a (N, C, ...) or (C, ...) input; "
            f"got pad {pad!r} for input {input.shape}"
        )
    for k, (before, after) in enumerate(sides):
        size = input.shape[-1 - k]
        if size == 0 or (mode == "reflect" and max(before, after) >= size):
            raise ValueError(
                f"{op}: {mode} padding {(before, after)} must be smaller than the size {size} "
                f"of axis {input.ndim - 1 - k} (input {input.shape})"
            )
    return _gather_pad(input, sides, mode)


def reflection_pad2d(input, padding) -> Tensor:
    """Pad H and W by mirroring the border (the edge pixel itself is not repeated).

    ``padding`` is an int or (left, right, top, bottom), as ``nn.ReflectionPad2d``.
    """
    op = "reflection_pad2d"
    check_4d(op, "input", input)
    sides = (padding,) * 4 if isinstance(padding, (int, np.integer)) else tuple(padding)
    if len(sides) != 4:
        raise ValueError(
            f"{op}: padding must be an int or (left, right, top, bottom), got {padding!r}"
        )
    left, right, top, bottom = (int(p) for p in sides)
    if min(left, right, top, bottom) < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {padding!r}")
    if max(top, bottom) >= input.shape[2] or max(left, right) >= input.shape[3]:
        raise ValueError(
            f"{op}: padding {padding!r} must be smaller than the input size {input.shape[2:]}"
        )
    return _gather_pad(input, [(left, right), (top, bottom)], "reflect")
