"""Normalisation: instance norm, batch norm, and AdaIN built on instance norm.

All three are composed from Tensor operations (mean, subtraction, sqrt), so
autograd derives their gradients.
"""

from __future__ import annotations

from minidl.functional.checks import check_4d, check_same_device, check_same_dtype
from minidl.tensor import Tensor


def _moments(x: Tensor, axes):
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=axes, keepdims=True)
    return mean, centred, var


def _affine(y: Tensor, weight, bias) -> Tensor:
    if weight is not None:
        y = y * weight.reshape(1, -1, 1, 1)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y


def instance_norm(input, *, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of each image to zero mean, unit variance.

    ``weight`` and ``bias`` are keyword-only: PyTorch's instance_norm takes running
    statistics in those positions, which minidl's (stateless) version has not.
    """
    check_4d("instance_norm", "input", input)
    _, centred, var = _moments(input, (2, 3))
    y = centred / (var + eps).sqrt()
    return _affine(y, weight, bias)


def batch_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:  # fmt: skip
    """Batch normalisation over (N, H, W) per channel, as in PyTorch.

    Training uses the batch statistics and updates ``running_mean`` /
    ``running_var`` in place (unbiased variance, like PyTorch); evaluation uses
    the running statistics.
    """
    check_4d("batch_norm", "input", input)
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    if training:
        mean, centred, var = _moments(input, (0, 2, 3))
        if running_mean is not None:
            n, _, h, w = input.shape
            count = n * h * w
            unbiased = var.data.reshape(-1) * count / max(count - 1, 1)
            running_mean.data[...] = (
                1 - momentum
            ) * running_mean.data + momentum * mean.data.reshape(-1)
            running_var.data[...] = (1 - momentum) * running_var.data + momentum * unbiased
        y = centred / (var + eps).sqrt()
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode needs running_mean and running_var")
        mean = running_mean.detach().reshape(1, -1, 1, 1)
        var = running_var.detach().reshape(1, -1, 1, 1)
        y = (input - mean) / (var + eps).sqrt()
    return _affine(y, weight, bias)


def adain(content, style, eps: float = 1e-5) -> Tensor:
    """Adaptive instance normalisation (Huang & Belongie, 2017).

    Gives each channel of ``content`` the mean and standard deviation that the
    same channel has in ``style``.
    """
    check_4d("adain", "content", content)
    check_4d("adain", "style", style)
    check_same_dtype("adain", content=content, style=style)
    check_same_device("adain", content=content, style=style)
    if content.shape[1] != style.shape[1] or style.shape[0] not in (1, content.shape[0]):
        raise ValueError(
            f"adain: style {style.shape} must have the channels of content {content.shape} "
            "and a batch of 1 or the same batch"
        )
    style_mean, _, style_var = _moments(style, (2, 3))
    return instance_norm(content, eps=eps) * (style_var + eps).sqrt() + style_mean
