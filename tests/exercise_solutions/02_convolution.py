"""A correct solution of lessons/exercises/02_convolution.py (for tests/test_lessons.py)."""

import numpy as np

import minidl
import minidl.functional as F


def corr2d(X, K):
    kh, kw = K.shape
    out = np.zeros((X.shape[0] - kh + 1, X.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (X[i:i + kh, j:j + kw] * K).sum()
    return out


def conv_matrix(kernel, input_hw):
    h, w = input_hw
    columns = []
    for j in range(h * w):
        basis = np.zeros(h * w)
        basis[j] = 1.0
        columns.append(corr2d(basis.reshape(h, w), kernel).reshape(-1))
    return np.stack(columns, axis=1)


def conv2d(x, w, stride=1, padding=0):
    if padding:
        x = F.pad(x, (padding,) * 4)
    n, _, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    flat_w = w.reshape(1, c_out, -1)
    rows = []
    for i in range(0, h - kh + 1, stride):
        cols = []
        for j in range(0, wd - kw + 1, stride):
            patch = x[:, :, i:i + kh, j:j + kw].reshape(n, 1, -1)
            cols.append((patch * flat_w).sum(dim=2))
        rows.append(minidl.stack(cols, dim=-1))
    return minidl.stack(rows, dim=-2)
