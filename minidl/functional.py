"""Differentiable neural-network operations, with PyTorch's names and semantics.

Convolution, transposed convolution, pooling and Gram matrices are computed by
the tensor's *backend* (NumPy, the CUDA kernels, or the same kernels emulated on
the CPU); everything else is composed from Tensor operations, so autograd
derives its gradient for free.  Read the convolution section side by side:

    conv2d            forward = backend.conv2d             backward(x) = backend.conv2d_grad_input
    conv_transpose2d  forward = backend.conv2d_grad_input  backward(x) = backend.conv2d

Transposed convolution *is* the gradient of convolution, and vice versa.
"""

from __future__ import annotations

import numpy as np

from minidl.autograd import Function
from minidl.backends import get_backend
from minidl.tensor import Tensor
from minidl.tensor_ops import array_module, as_tensor_like

# --------------------------------------------------------------- validation


def _pair(value, name: str, op: str, shapes: str) -> tuple[int, int]:
    """``value`` as (h, w); ``shapes`` describes the inputs for the error message."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r} ({shapes})")
    return int(pair[0]), int(pair[1])


def _positive_pair(value, name: str, op: str, shapes: str) -> tuple[int, int]:
    pair = _pair(value, name, op, shapes)
    if min(pair) <= 0:
        raise ValueError(f"{op}: {name} must be positive, got {value!r} ({shapes})")
    return pair


def _non_negative_pair(value, name: str, op: str, shapes: str) -> tuple[int, int]:
    pair = _pair(value, name, op, shapes)
    if min(pair) < 0:
        raise ValueError(f"{op}: {name} must be >= 0, got {value!r} ({shapes})")
    return pair


def _check_4d(op: str, name: str, t: Tensor):
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if t.ndim != 4:
        raise ValueError(f"{op}: {name} must be 4-D (N, C, H, W), got shape {t.shape}")


def _check_same_dtype(op: str, **tensors):
    dtypes = {name: t.dtype for name, t in tensors.items() if t is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n} {tensors[n].shape} {d}" for n, d in dtypes.items())
        raise TypeError(f"{op}: mixed dtypes: {listed}")


def _output_size(op, size, kernel, stride, padding, dilation, shapes) -> int:
    """Sliding-window output length: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(
            f"{op}: kernel (extent {span}) is larger than the padded input "
            f"({size} + 2*{padding}); shapes {shapes}"
        )
    return (size + 2 * padding - span) // stride + 1


def _check_same_device(op: str, **tensors) -> str:
    """The tensors' common device; an error naming each one if they differ."""
    tensors = {name: t for name, t in tensors.items() if t is not None}
    if len({t.device for t in tensors.values()}) > 1:
        listed = ", ".join(f"{name} {t.shape} on {t.device!r}" for name, t in tensors.items())
        raise ValueError(f"{op}: inputs are on different devices: {listed}; use .to(device)")
    return next(iter(tensors.values())).device


def _backend(op: str, **tensors):
    """The backend that computes ``op`` for tensors on one device."""
    return get_backend(_check_same_device(op, **tensors))


# --------------------------------------------------------------- convolution


class _Convolution(Function):
    """What both convolutions share: the optional bias, a third input.

    The bias is added in place to the output (no second full-size array), and its
    gradient is the sum of the output gradient over the batch and the pixels.
    """

    @staticmethod
    def add_bias(y, bias: tuple):
        if bias:
            y += bias[0].reshape(1, -1, 1, 1)
        return y

    def bias_grad(self, gy) -> tuple:
        if len(self.needs_input_grad) < 3:  # no bias
            return ()
        return (gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None,)


class _Conv2d(_Convolution):
    def forward(self, x, w, *bias, stride, padding, dilation, backend):
        self.x, self.w = x, w
        self.options = stride, padding, dilation
        self.backend = backend
        return self.add_bias(backend.conv2d(x, w, stride, padding, dilation), bias)

    def backward(self, gy):
        x, w, backend = self.x, self.w, self.backend
        need_x, need_w = self.needs_input_grad[:2]
        gx = backend.conv2d_grad_input(gy, w, x.shape[2:], *self.options) if need_x else None
        gw = backend.conv2d_grad_weight(x, gy, w.shape[2:], *self.options) if need_w else None
        return (gx, gw, *self.bias_grad(gy))


class _ConvTranspose2d(_Convolution):
    """y = conv2d_grad_input(x): the roles of conv2d's input and output swap."""

    def forward(self, x, w, *bias, output_hw, stride, padding, dilation, backend):
        self.x, self.w = x, w
        self.options = stride, padding, dilation
        self.backend = backend
        y = backend.conv2d_grad_input(x, w, output_hw, stride, padding, dilation)
        return self.add_bias(y, bias)

    def backward(self, gy):
        x, w, backend = self.x, self.w, self.backend
        need_x, need_w = self.needs_input_grad[:2]
        gx = backend.conv2d(gy, w, *self.options) if need_x else None
        gw = backend.conv2d_grad_weight(gy, x, w.shape[2:], *self.options) if need_w else None
        return (gx, gw, *self.bias_grad(gy))


def _conv_arguments(op, x, w, b, stride, padding, dilation, weight_layout):
    """Check what conv2d and conv_transpose2d share; return shapes text and pairs.

    ``weight_layout`` says where the input channels sit in ``w``: conv2d's weight is
    (C_out, C_in, kh, kw), conv_transpose2d's is (C_in, C_out, kh, kw).
    """
    _check_4d(op, "input", x)
    _check_4d(op, "weight", w)
    _check_same_dtype(op, input=x, weight=w, bias=b)
    shapes = f"input {x.shape}, weight {w.shape}"
    if weight_layout.startswith("(C_out"):
        out_channels, in_channels = w.shape[:2]
    else:
        in_channels, out_channels = w.shape[:2]
    if x.shape[1] != in_channels:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels but weight expects {in_channels} "
            f"(input {x.shape}, weight {w.shape}; weight is {weight_layout})"
        )
    if b is not None and b.shape != (out_channels,):
        raise ValueError(f"{op}: bias must have shape ({out_channels},), got {b.shape}")
    return (
        shapes,
        _positive_pair(stride, "stride", op, shapes),
        _non_negative_pair(padding, "padding", op, shapes),
        _positive_pair(dilation, "dilation", op, shapes),
    )


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d`` (groups=1).

    x: (N, C_in, H, W), w: (C_out, C_in, kh, kw), b: (C_out,) or None.
    """
    op = "conv2d"
    shapes, stride, padding, dilation = _conv_arguments(
        op, x, w, b, stride, padding, dilation, weight_layout="(C_out, C_in, kh, kw)"
    )
    for i in range(2):
        _output_size(op, x.shape[2 + i], w.shape[2 + i], stride[i], padding[i], dilation[i], shapes)
    backend = _backend(op, input=x, weight=w, bias=b)
    bias = () if b is None else (b,)
    return _Conv2d.apply(
        x, w, *bias, stride=stride, padding=padding, dilation=dilation, backend=backend
    )


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1) -> Tensor:
    """Transposed convolution ("deconvolution"), as ``torch.nn.functional.conv_transpose2d``.

    x: (N, C_in, H, W), w: (C_in, C_out, kh, kw), b: (C_out,) or None.
    Output size: (H - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1.
    """
    op = "conv_transpose2d"
    shapes, stride, padding, dilation = _conv_arguments(
        op, x, w, b, stride, padding, dilation, weight_layout="(C_in, C_out, kh, kw)"
    )
    output_padding = _non_negative_pair(output_padding, "output_padding", op, shapes)
    output_hw = []
    for i in range(2):
        # PyTorch also allows output_padding < dilation; here it must be < stride,
        # the case where it picks one of the input sizes a strided conv2d maps to
        # the same output size (conv_transpose2d is that conv2d's input gradient).
        if output_padding[i] >= stride[i]:
            raise ValueError(
                f"{op}: output_padding {output_padding} must be smaller than stride {stride} "
                f"({shapes})"
            )
        size = (
            (x.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
            + dilation[i] * (w.shape[2 + i] - 1) + output_padding[i] + 1
        )
        if size < 1:
            raise ValueError(
                f"{op}: output size would be {size} < 1 ({shapes}, "
                f"stride {stride}, padding {padding})"
            )
        output_hw.append(size)
    backend = _backend(op, input=x, weight=w, bias=b)
    bias = () if b is None else (b,)
    return _ConvTranspose2d.apply(
        x, w, *bias, output_hw=tuple(output_hw), stride=stride, padding=padding,
        dilation=dilation, backend=backend,
    )


# --------------------------------------------------------------- pooling


def _pool_geometry(op, x, kernel_size, stride, padding):
    _check_4d(op, "input", x)
    shapes = f"input {x.shape}"
    kernel = _positive_pair(kernel_size, "kernel_size", op, shapes)
    stride = kernel if stride is None else _positive_pair(stride, "stride", op, shapes)
    padding = _non_negative_pair(padding, "padding", op, shapes)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{op}: padding {padding} must be at most half the kernel size {kernel} ({shapes})"
        )
    shapes = f"input {x.shape}, kernel_size {kernel}"
    for i in range(2):
        _output_size(op, x.shape[2 + i], kernel[i], stride[i], padding[i], 1, shapes)
    return kernel, stride, padding


class _MaxPool2d(Function):
    def forward(self, x, kernel, stride, padding, backend):
        self.input_hw, self.backend = x.shape[2:], backend
        self.geometry = kernel, stride, padding
        y, self.indices = backend.max_pool2d(x, kernel, stride, padding)
        return y

    def backward(self, gy):
        return self.backend.max_pool2d_grad(gy, self.indices, self.input_hw, *self.geometry)


def max_pool2d(x, kernel_size, stride=None, padding=0, return_indices=False):
    """Max pooling; with ``return_indices`` also the switches (flat h*W+w per plane)."""
    kernel, stride, padding = _pool_geometry("max_pool2d", x, kernel_size, stride, padding)
    backend = _backend("max_pool2d", input=x)
    y, function = _MaxPool2d.run(x, kernel=kernel, stride=stride, padding=padding, backend=backend)
    if not return_indices:
        return y
    return y, Tensor(function.indices, device=x.device)


class _MaxUnpool2d(Function):
    def forward(self, x, indices, output_hw, backend):
        self.indices, self.backend = indices, backend
        return backend.max_unpool2d(x, indices, output_hw)

    def backward(self, gy):
        return self.backend.max_unpool2d_grad(gy, self.indices)


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Put each value back at its switch, zeros elsewhere (the inverse of max_pool2d).

    Output size defaults to (H - 1)·stride - 2·padding + kernel_size.  When
    overlapping windows chose the same switch, one value overwrites the other
    there (as in PyTorch), yet the backward pass gives the gradient to both.
    """
    op = "max_unpool2d"
    _check_4d(op, "input", x)
    shapes = f"input {x.shape}"
    kernel = _positive_pair(kernel_size, "kernel_size", op, shapes)
    stride = kernel if stride is None else _positive_pair(stride, "stride", op, shapes)
    padding = _non_negative_pair(padding, "padding", op, shapes)
    if not isinstance(indices, Tensor) or indices.shape != x.shape:
        got = indices.shape if isinstance(indices, Tensor) else type(indices).__name__
        raise ValueError(f"{op}: indices must be a Tensor of the input's shape {x.shape}, got {got}")
    if output_size is None:
        output_hw = tuple((x.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + kernel[i] for i in range(2))
    else:
        output_hw = tuple(int(s) for s in tuple(output_size)[-2:])
    if min(output_hw) < 1:
        raise ValueError(f"{op}: output size {output_hw} < 1 for input {x.shape}")
    plane = output_hw[0] * output_hw[1]
    if indices.size and (int(indices.data.min()) < 0 or int(indices.data.max()) >= plane):
        raise ValueError(
            f"{op}: indices must lie in [0, {plane}) for output size {output_hw}, found "
            f"[{int(indices.data.min())}, {int(indices.data.max())}]"
        )
    backend = _backend(op, input=x, indices=indices)
    return _MaxUnpool2d.apply(x, indices=indices.data, output_hw=output_hw, backend=backend)


class _AvgPool2d(Function):
    def forward(self, x, kernel, stride, padding, backend):
        self.input_hw, self.backend = x.shape[2:], backend
        self.options = kernel, stride, padding
        return backend.avg_pool2d(x, kernel, stride, padding)

    def backward(self, gy):
        return self.backend.avg_pool2d_grad(gy, self.input_hw, *self.options)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Average pooling; padded zeros count in the divisor (count_include_pad=True)."""
    kernel, stride, padding = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding)
    backend = _backend("avg_pool2d", input=x)
    return _AvgPool2d.apply(x, kernel=kernel, stride=stride, padding=padding, backend=backend)


# --------------------------------------------------------------- Gram matrix


class _Gram(Function):
    def forward(self, x, backend):
        self.x, self.backend = x, backend
        return backend.gram(x)

    def backward(self, gG):
        return self.backend.gram_grad(gG, self.x)


def gram_matrix(x) -> Tensor:
    """Channel correlations G[n] = F·Fᵀ / (C·H·W), F = x[n] as (C, H·W): (N, C, C)."""
    _check_4d("gram_matrix", "input", x)
    return _Gram.apply(x, backend=_backend("gram_matrix", input=x))


# --------------------------------------------------------------- activations


class _Relu(Function):
    # Saving the output, not a mask: the next layer keeps that same array anyway.
    def forward(self, x):
        self.out = array_module(x).maximum(x, 0)
        return self.out

    def backward(self, g):
        return g * (self.out > 0)


class _LeakyRelu(Function):
    def forward(self, x, negative_slope):
        xp = array_module(x)
        self.slope = xp.where(x > 0, 1, negative_slope).astype(x.dtype)
        return x * self.slope

    def backward(self, g):
        return g * self.slope


class _Sigmoid(Function):
    def forward(self, x):
        xp = array_module(x)
        # 1/(1+e^-x) overflows for very negative x; this form never does.
        e = xp.exp(-xp.abs(x))
        self.out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class _Tanh(Function):
    def forward(self, x):
        self.out = array_module(x).tanh(x)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


def relu(x) -> Tensor:
    return _Relu.apply(x)


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    return _LeakyRelu.apply(x, negative_slope=negative_slope)


def sigmoid(x) -> Tensor:
    return _Sigmoid.apply(x)


def tanh(x) -> Tensor:
    return _Tanh.apply(x)


# --------------------------------------------------------------- resampling


def upsample_nearest(x, scale_factor: int = 2) -> Tensor:
    """Nearest-neighbour upsampling by an integer factor.

    It is broadcasting: view each pixel as a 1×1 block and stretch it to s×s, so
    the backward pass (sum over each block) comes from autograd.
    """
    _check_4d("upsample_nearest", "input", x)
    if not isinstance(scale_factor, (int, np.integer)) or scale_factor < 1:
        raise ValueError(f"upsample_nearest: scale_factor must be a positive int, got {scale_factor!r}")
    n, c, h, w = x.shape
    s = int(scale_factor)
    block = Tensor(x.xp.ones((1, 1, 1, s, 1, s), dtype=x.dtype), device=x.device)
    return (x.reshape(n, c, h, 1, w, 1) * block).reshape(n, c, h * s, w * s)


def reflection_pad2d(x, padding) -> Tensor:
    """Pad by mirroring the border (the edge pixel itself is not repeated).

    ``padding`` is an int or (left, right, top, bottom), as in PyTorch.  It is
    integer-array indexing with reflected indices, so autograd scatters the
    gradient of every copy back onto its source pixel.
    """
    op = "reflection_pad2d"
    _check_4d(op, "input", x)
    sides = (padding,) * 4 if isinstance(padding, (int, np.integer)) else tuple(padding)
    if len(sides) != 4:
        raise ValueError(
            f"{op}: padding must be an int or (left, right, top, bottom), got {padding!r}"
        )
    left, right, top, bottom = (int(p) for p in sides)
    h, w = x.shape[2:]
    if min(left, right, top, bottom) < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {padding!r}")
    if max(top, bottom) >= h or max(left, right) >= w:
        raise ValueError(
            f"{op}: padding {padding!r} must be smaller than the input size {x.shape[2:]}"
        )

    def reflected(size, before, after):
        i = np.arange(-before, size + after)
        i = np.abs(i)  # mirror at the start
        return (size - 1) - np.abs((size - 1) - i)  # mirror at the end

    rows = x.xp.asarray(reflected(h, top, bottom))
    cols = x.xp.asarray(reflected(w, left, right))
    return x[:, :, rows][:, :, :, cols]


# --------------------------------------------------------------- normalisation


def _moments(x: Tensor, axes):
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=axes, keepdims=True)
    return mean, centred, var


def instance_norm(x, *, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of each image to zero mean, unit variance.

    ``weight`` and ``bias`` are keyword-only: PyTorch's instance_norm takes running
    statistics in those positions, which minidl's (stateless) version has not.
    """
    _check_4d("instance_norm", "input", x)
    _, centred, var = _moments(x, (2, 3))
    y = centred / (var + eps).sqrt()
    return _affine(y, weight, bias)


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over (N, H, W) per channel, as in PyTorch.

    Training uses the batch statistics and updates ``running_mean`` /
    ``running_var`` in place (unbiased variance, like PyTorch); evaluation uses
    the running statistics.
    """
    _check_4d("batch_norm", "input", x)
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    if training:
        mean, centred, var = _moments(x, (0, 2, 3))
        if running_mean is not None:
            count = x.size // x.shape[1]
            unbiased = var.data.reshape(-1) * count / max(count - 1, 1)
            running_mean.data[...] = (1 - momentum) * running_mean.data + momentum * mean.data.reshape(-1)
            running_var.data[...] = (1 - momentum) * running_var.data + momentum * unbiased
        y = centred / (var + eps).sqrt()
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode needs running_mean and running_var")
        mean = running_mean.detach().reshape(1, -1, 1, 1)
        var = running_var.detach().reshape(1, -1, 1, 1)
        y = (x - mean) / (var + eps).sqrt()
    return _affine(y, weight, bias)


def _affine(y: Tensor, weight, bias) -> Tensor:
    if weight is not None:
        y = y * weight.reshape(1, -1, 1, 1)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y


def adain(content, style, eps: float = 1e-5) -> Tensor:
    """Adaptive instance normalisation (Huang & Belongie, 2017).

    Gives each channel of ``content`` the mean and standard deviation that the
    same channel has in ``style``.
    """
    _check_4d("adain", "content", content)
    _check_4d("adain", "style", style)
    _check_same_dtype("adain", content=content, style=style)
    _check_same_device("adain", content=content, style=style)
    if content.shape[1] != style.shape[1] or style.shape[0] not in (1, content.shape[0]):
        raise ValueError(
            f"adain: style {style.shape} must have the channels of content {content.shape} "
            "and a batch of 1 or the same batch"
        )
    style_mean, _, style_var = _moments(style, (2, 3))
    return instance_norm(content, eps=eps) * (style_var + eps).sqrt() + style_mean


# --------------------------------------------------------------- losses


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean (or summed) squared error between ``input`` and ``target`` (PyTorch's names)."""
    if not isinstance(target, Tensor):
        target = as_tensor_like(target, input)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input {input.shape} and target {target.shape} differ")
    _check_same_dtype("mse_loss", input=input, target=target)
    _check_same_device("mse_loss", input=input, target=target)
    diff = input - target
    squared = diff * diff
    if reduction == "mean":
        return squared.mean()
    if reduction == "sum":
        return squared.sum()
    raise ValueError(f"mse_loss: reduction must be 'mean' or 'sum', got {reduction!r}")


def tv_loss(x) -> Tensor:
    """Total variation: mean squared difference between neighbouring pixels,
    vertical plus horizontal.  Small when the image is smooth."""
    _check_4d("tv_loss", "input", x)
    dy = x[:, :, 1:, :] - x[:, :, :-1, :]
    dx = x[:, :, :, 1:] - x[:, :, :, :-1]
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
    _check_4d(op, "x", x)
    _check_4d(op, "y", y)
    if x.shape != y.shape:
        raise ValueError(f"{op}: x {x.shape} and y {y.shape} must have the same shape")
    _check_same_dtype(op, x=x, y=y)
    _check_same_device(op, x=x, y=y)
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
