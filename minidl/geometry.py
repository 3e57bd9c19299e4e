"""Sliding-window geometry: output sizes and the (h, w) pairs every windowed op takes.

Convolution, transposed convolution, pooling, unfold and fold all slide a window
of ``kernel`` taps, ``dilation`` apart, in steps of ``stride`` over an input
padded by ``padding`` on both sides.  Their sizes come from two formulas, kept
here once and used by ``minidl.functional`` and by every backend:

    output_size            floor((size + 2p - d(k-1) - 1) / s) + 1
    transposed_output_size (size - 1)·s - 2p + d(k-1) + output_padding + 1

The second inverts the first: a convolution maps every size in
``transposed_output_size(o, ..., output_padding=0 .. s-1)`` to ``o``.

The ``*_pair`` helpers turn an int or a pair into an ``(h, w)`` tuple of Python
ints and raise the error a user should see: the op, the argument, the value and
the shapes of the inputs (``shapes`` is a short text such as
``"input (1, 3, 8, 8), weight (4, 3, 3, 3)"``).
"""

from __future__ import annotations

import numpy as np


def output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """How many window positions fit: floor((size + 2p - d(k-1) - 1) / s) + 1, as in PyTorch."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_hw(input_hw, kernel, stride, padding, dilation=(1, 1)) -> tuple[int, int]:
    """:func:`output_size` for both axes; every argument is an (h, w) pair."""
    return tuple(output_size(*axis) for axis in zip(input_hw, kernel, stride, padding, dilation))


def transposed_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1) -> int:
    """The largest input size a convolution maps to ``size`` outputs, less
    ``stride - 1 - output_padding``: (size - 1)·s - 2p + d(k-1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def checked_output_hw(op: str, input_hw, kernel, stride, padding, dilation, shapes: str):
    """:func:`output_hw`, or a ValueError when the window does not fit the padded input."""
    for size, k, p, d in zip(input_hw, kernel, padding, dilation):
        span = d * (k - 1) + 1
        if size + 2 * p < span:
            raise ValueError(
                f"{op}: kernel (extent {span}) is larger than the padded input "
                f"({size} + 2*{p}); shapes {shapes}"
            )
    return output_hw(input_hw, kernel, stride, padding, dilation)


def pair(value, name: str, op: str, shapes: str) -> tuple[int, int]:
    """``value`` (an int or two ints) as an (h, w) tuple of Python ints."""
    both = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(both) != 2 or not all(isinstance(v, (int, np.integer)) for v in both):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r} ({shapes})")
    return int(both[0]), int(both[1])


def positive_pair(value, name: str, op: str, shapes: str) -> tuple[int, int]:
    """:func:`pair`, both > 0 (kernel sizes, strides, dilations)."""
    both = pair(value, name, op, shapes)
    if min(both) <= 0:
        raise ValueError(f"{op}: {name} must be positive, got {value!r} ({shapes})")
    return both


def non_negative_pair(value, name: str, op: str, shapes: str) -> tuple[int, int]:
    """:func:`pair`, both >= 0 (paddings)."""
    both = pair(value, name, op, shapes)
    if min(both) < 0:
        raise ValueError(f"{op}: {name} must be >= 0, got {value!r} ({shapes})")
    return both
