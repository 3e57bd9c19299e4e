"""A correct solution of lessons/exercises/03_transposed_convolution.py (for the tests)."""

import minidl
import minidl.functional as F


def conv_transpose2d(x, w, stride=1, padding=0):
    n, c_in, h, wd = x.shape
    _, c_out, kh, kw = w.shape
    full_h, full_w = (h - 1) * stride + kh, (wd - 1) * stride + kw
    out = minidl.zeros((n, c_out, full_h, full_w), dtype=x.dtype)
    for i in range(h):
        for j in range(wd):
            # (n, c_in, 1, 1, 1) * (1, c_in, c_out, kh, kw), summed over c_in
            paint = (x[:, :, i, j].reshape(n, c_in, 1, 1, 1) * w.reshape(1, c_in, c_out, kh, kw)).sum(dim=1)
            top, left = i * stride, j * stride
            out = out + F.pad(paint, (left, full_w - left - kw, top, full_h - top - kh))
    return out[:, :, padding:full_h - padding, padding:full_w - padding]


def transposed_output_size(i, k, s, p, d, output_padding):
    return (i - 1) * s - 2 * p + d * (k - 1) + 1 + output_padding


def output_padding_for(i, k, s, p, d):
    return (i + 2 * p - d * (k - 1) - 1) % s
