"""Exercise 11 — Gram matrices (lesson 11).

Write the two functions below, then check them with

    python -m minidl.grade 11        (or: minidl grade 11)

The grader compares gram_matrix with F.gram_matrix and gram_loss with the style part
of minidl.style.gatys.stylize_loss, and runs gradcheck on both.  Do not call
F.gram_matrix in gram_matrix (you may use your own gram_matrix in gram_loss).
"""

import numpy as np  # noqa: F401  (the usual imports, for your solution)

import minidl  # noqa: F401
import minidl.functional as F  # noqa: F401


def gram_matrix(x):
    """Channel correlations of x (N, C, H, W): a Tensor (N, C, C) with
    G[n] = F Fᵀ / (C·H·W), F = x[n] reshaped to (C, H·W)."""
    raise NotImplementedError("exercise: gram_matrix, reshape, transpose, matmul, divide")


def gram_loss(feature, target_gram):
    """The texture (style) loss of one layer: mean((G − T)²) over all entries, G the Gram
    matrix of ``feature`` (1, C, H, W) and T = ``target_gram`` (1, C, C).  0-d Tensor."""
    raise NotImplementedError("exercise: gram_loss")
