"""Losses: mean squared and absolute error, total variation, SSIM.

All are composed from Tensor operations (and, for SSIM's Gaussian window, two
convolutions), so autograd derives their gradients.
"""

from __future__ import annotations

import numpy as np

from minidl.functional.checks import check_4d, check_same_device, check_same_dtype, reduce
from minidl.functional.conv import conv2d
from minidl.tensor import Tensor
from minidl.tensor_ops import as_tensor_like


def _difference(op: str, input, target) -> Tensor:
    """input - target, after checking they match (a plain array target becomes a constant)."""
    if not isinstance(target, Tensor):
        target = as_tensor_like(target, input)
    if input.shape != target.shape:
        raise ValueError(f"{op}: input {input.shape} and target {target.shape} differ")
    check_same_dtype(op, input=input, target=target)
    check_same_device(op, input=input, target=target)
    return input - target


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Squared error (input - target)², averaged, summed or kept ('mean' / 'sum' / 'none')."""
    diff = _difference("mse_loss", input, target)
    return reduce("mse_loss", diff * diff, reduction)


def l1_loss(input, target, reduction: str = "mean") -> Tensor:
    """Absolute error |input - target|, averaged, summed or kept ('mean' / 'sum' / 'none')."""
    return reduce("l1_loss", _difference("l1_loss", input, target).abs(), reduction)


def tv_loss(input) -> Tensor:
    """Total variation: mean squared difference between neighbouring pixels,
    vertical plus horizontal.  Small when the image is smooth."""
    check_4d("tv_loss", "input", input)
    dy = input[:, :, 1:, :] - input[:, :, :-1, :]
    dx = input[:, :, :, 1:] - input[:, :, :, :-1]
    return (dy * dy).mean() + (dx * dx).mean()


def _gaussian_window(size: int, sigma: float, like: Tensor) -> Tensor:
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    return as_tensor_like(g / g.sum(), like)


def ssim(x, y, window_size: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> Tensor:
    """Structural similarity (Wang et al., 2004), averaged over the image: a Tensor in
    [-1, 1], 1 for identical images.  Differentiable, so ``1 - ssim(x, y)`` is a loss.

    Local statistics use a Gaussian window (size 11, σ = 1.5) applied as two 1-D
    convolutions without padding, per channel; K1 = 0.01, K2 = 0.03.
    """
    op = "ssim"
    check_4d(op, "x", x)
    check_4d(op, "y", y)
    if x.shape != y.shape:
        raise ValueError(f"{op}: x {x.shape} and y {y.shape} must have the same shape")
    check_same_dtype(op, x=x, y=y)
    check_same_device(op, x=x, y=y)
    n, c, h, w = x.shape
    if min(h, w) < window_size:
        raise ValueError(f"{op}: images {x.shape} are smaller than the window ({window_size})")
    g = _gaussian_window(window_size, sigma, x)
    g_rows = g.reshape(1, 1, window_size, 1)
    g_cols = g.reshape(1, 1, 1, window_size)

    def blur(t):
        planes = t.reshape(n * c, 1, h, w)
        return conv2d(conv2d(planes, g_rows), g_cols)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return (numerator / denominator).mean()
