"""Exercise 06 — max pooling with switches, and unpooling (lesson 06_pooling_unpooling).

Write the two functions below, then check them with

    python -m minidl.grade 06        (or: minidl grade 06)

The grader compares them with F.max_pool2d(..., return_indices=True) and
F.max_unpool2d, and runs gradcheck on max_unpool2d().  Do not call those two here.
"""

import numpy as np  # noqa: F401  (the usual imports, for your solution)

import minidl  # noqa: F401
import minidl.functional as F  # noqa: F401


def max_pool2d_with_indices(x, kernel_size, stride):
    """Max pooling without padding, returning (values, switches).

    x: Tensor (N, C, H, W).  values: (N, C, OH, OW), OH = (H - kernel_size) // stride + 1,
    the maximum of each window.  switches: integer array or Tensor of the same shape,
    the position of each maximum in the flattened H*W plane (row * W + column), the
    first one in row-major window order when there are ties (as PyTorch).
    """
    raise NotImplementedError("exercise: max_pool2d_with_indices, argmax per window")


def max_unpool2d(y, switches, kernel_size, stride, output_size):
    """Unpooling: a zero Tensor (N, C, *output_size) with y's values written at the switches.

    y: Tensor (N, C, OH, OW); switches: as returned by F.max_pool2d(..., return_indices=True)
    (a Tensor of int64), for windows that do not overlap (stride == kernel_size; the
    output size says how many rows and columns the pooling dropped).  Differentiable in y: build the
    result with Tensor operations (hint: a 0/1 matrix that scatters the OH*OW values of a
    plane to H*W positions, then matmul).
    """
    raise NotImplementedError("exercise: max_unpool2d, scatter y to the switches")
