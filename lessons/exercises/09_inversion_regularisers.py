"""Exercise 09 — the regularisers of feature inversion (lesson 09).

Write the three functions below, then check them with

    python -m minidl.grade 09        (or: minidl grade 09)

The grader compares them with F.tv_loss and with minidl.inversion.optimize.tv_beta
and alpha_norm, and runs gradcheck on each.  Use Tensor operations only.
"""

import numpy as np  # noqa: F401  (the usual imports, for your solution)

import minidl  # noqa: F401
import minidl.functional as F  # noqa: F401

B = 80.0       # the spread of a natural image's centred pixel values (VGG input scale)
V = B / 6.5    # the typical difference between neighbouring pixels


def tv_loss(x):
    """Total variation of x (N, C, H, W), minidl's definition: the mean of the squared
    vertical differences x[:, :, i+1, j] - x[:, :, i, j] plus the mean of the squared
    horizontal differences.  Closed forms: a constant image -> 0; a ramp of slope a -> a²;
    a ±1 checkerboard -> 8.  Return a 0-d Tensor."""
    raise NotImplementedError("exercise: tv_loss, two means of squared neighbour differences")


def tv_beta(x, beta):
    """Mahendran & Vedaldi's TV^β: mean over the pixels that have a right and a lower
    neighbour (all but the last row and column) of ((Δᵢx)² + (Δⱼx)²) / V², raised to
    β/2 — for β != 2 add 1e-8 inside the power (its slope at 0).  Δᵢx is the difference
    to the pixel below, Δⱼx to the pixel on the right.  Return a 0-d Tensor."""
    raise NotImplementedError("exercise: tv_beta")


def alpha_norm(x, alpha):
    """mean(|x / B| ** alpha): about 1 for a natural image, large once pixels run off.
    Return a 0-d Tensor."""
    raise NotImplementedError("exercise: alpha_norm")
