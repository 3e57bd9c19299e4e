"""A correct solution of lessons/exercises/06_pooling.py (for the tests)."""

import numpy as np

import minidl


def max_pool2d_with_indices(x, kernel_size, stride):
    a = x.numpy()
    n, c, h, w = a.shape
    oh, ow = (h - kernel_size) // stride + 1, (w - kernel_size) // stride + 1
    values = np.empty((n, c, oh, ow))
    switches = np.empty((n, c, oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            window = a[:, :, i * stride:i * stride + kernel_size, j * stride:j * stride + kernel_size]
            flat = window.reshape(n, c, -1)
            k = flat.argmax(axis=2)
            values[:, :, i, j] = flat.max(axis=2)
            switches[:, :, i, j] = (i * stride + k // kernel_size) * w + j * stride + k % kernel_size
    return minidl.tensor(values, dtype=a.dtype), switches


def max_unpool2d(y, switches, kernel_size, stride, output_size):
    n, c, oh, ow = y.shape
    h, w = output_size
    idx = np.asarray(switches.numpy() if hasattr(switches, "numpy") else switches).reshape(n, c, -1)
    scatter = np.zeros((n, c, oh * ow, h * w))
    for a in range(n):
        for b in range(c):
            scatter[a, b, np.arange(oh * ow), idx[a, b]] = 1.0
    out = y.reshape(n, c, 1, oh * ow) @ minidl.tensor(scatter, dtype=y.dtype)
    return out.reshape(n, c, h, w)
