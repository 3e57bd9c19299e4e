"""Exercise 03 — transposed convolution (lesson 03_transposed_convolution).

Write the three functions below, then check them with

    python -m minidl.grade 03        (or: minidl grade 03)

The grader compares them with minidl.functional.conv_transpose2d and runs gradcheck
on conv_transpose2d().  Do not call F.conv_transpose2d or F.fold here.
"""

import numpy as np  # noqa: F401  (the usual imports, for your solution)

import minidl  # noqa: F401
import minidl.functional as F  # noqa: F401


def conv_transpose2d(x, w, stride=1, padding=0):
    """The transposed convolution on minidl Tensors, differentiable.

    x: (N, C_in, H, W); w: (C_in, C_out, kh, kw) (PyTorch's layout for a transposed conv).
    Return a Tensor (N, C_out, OH, OW), OH = (H - 1)*stride - 2*padding + kh, equal to
    F.conv_transpose2d(x, w, stride=stride, padding=padding).  Any of the lesson's
    three views will do: painting (each input pixel adds value * kernel at (i*s, j*s),
    then crop `padding` on every side), or conv2d of the zero-stuffed, padded input with
    the flipped, channel-swapped kernel.  Use Tensor operations so gradcheck passes.
    """
    raise NotImplementedError("exercise: conv_transpose2d, e.g. by painting scaled kernels")


def transposed_output_size(i, k, s, p, d, output_padding):
    """Output size (an int) of conv_transpose2d for input size i, kernel k, stride s,
    padding p, dilation d and output_padding."""
    raise NotImplementedError("exercise: transposed_output_size, the inverse of conv2d's size formula")


def output_padding_for(i, k, s, p, d):
    """The output_padding that makes conv_transpose2d return to size i after a conv2d
    (kernel k, stride s, padding p, dilation d) took size i to its output size."""
    raise NotImplementedError("exercise: output_padding_for, the remainder conv2d's floor threw away")
