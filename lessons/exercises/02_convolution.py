"""Exercise 02 — convolution as a matrix (lesson 02_convolution_as_matrix).

Write the three functions below, then check them with

    python -m minidl.grade 02        (or: minidl grade 02)

The grader compares each with minidl.functional.conv2d on a few inputs and runs
gradcheck on conv2d().  Do not call F.conv2d, F.unfold or F.conv_transpose2d here:
the point is to build the operation yourself.
"""

import numpy as np  # noqa: F401  (the usual imports, for your solution)

import minidl  # noqa: F401
import minidl.functional as F  # noqa: F401


def corr2d(X, K):
    """Cross-correlate a 2-D array X (H, W) with a 2-D kernel K (kh, kw), no padding, stride 1.

    Return a NumPy array of shape (H - kh + 1, W - kw + 1) with
    out[i, j] = sum(X[i:i+kh, j:j+kw] * K).  d2l's example: X = 0..8 as 3x3,
    K = [[1, 2], [3, 4]] gives [[27, 37], [57, 67]].
    """
    raise NotImplementedError("exercise: corr2d, two loops over the output positions")


def conv_matrix(kernel, input_hw):
    """The matrix C of "cross-correlate with ``kernel``" on one (H, W) = input_hw channel.

    Return a NumPy array of shape (OH*OW, H*W), OH = H - kh + 1, OW = W - kw + 1, such
    that C @ x.reshape(-1) == corr2d(x, kernel).reshape(-1) for every x.  Hint: column j
    is the output for the basis image that is 1 at pixel j (use your corr2d).
    """
    raise NotImplementedError("exercise: conv_matrix, one column per basis image")


def conv2d(x, w, stride=1, padding=0):
    """conv2d on minidl Tensors, differentiable: x (N, C_in, H, W), w (C_out, C_in, kh, kw).

    Return a Tensor (N, C_out, OH, OW) with OH = (H + 2*padding - kh) // stride + 1 (same
    for OW), equal to F.conv2d(x, w, stride=stride, padding=padding).  Build it from
    Tensor operations only (F.pad, slicing, *, .sum(dim=...), minidl.stack, reshape) so
    that autograd can differentiate it: the grader runs gradcheck on x and w.
    """
    raise NotImplementedError("exercise: conv2d from slices, products and sums of Tensors")
