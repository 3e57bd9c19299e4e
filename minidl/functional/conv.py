"""Convolution, transposed convolution, and the im2col pair behind both (unfold / fold).

The arithmetic happens in the tensor's backend (NumPy, the CUDA kernels, or those
kernels emulated on the CPU); this file checks the arguments and wires each
forward pass to its backward pass.  Read the four ops side by side:

    conv2d            forward = backend.conv2d             backward(x) = backend.conv2d_grad_input
    conv_transpose2d  forward = backend.conv2d_grad_input  backward(x) = backend.conv2d
    unfold            forward = backend.im2col             backward    = backend.col2im
    fold              forward = backend.col2im             backward    = backend.im2col

Transposed convolution *is* the gradient of convolution, and vice versa; fold is
the adjoint (the transpose) of unfold, and vice versa.
"""

from __future__ import annotations

from minidl import geometry
from minidl.autograd import Function
from minidl.backends import threads
from minidl.functional.checks import check_4d, check_same_dtype, check_tensor, kernel_backend
from minidl.tensor import Tensor

# --------------------------------------------------------------- convolution


class _Convolution(Function):
    """What both convolutions share: the optional bias, a third input.

    The bias is added in place to the output (no second full-size array), and its
    gradient is the sum of the output gradient over the batch and the pixels.
    """

    @staticmethod
    def add_bias(y, bias: tuple):
        if bias:  # (threads.add: on the cpu, a share of the channels per core)
            threads.add(y, bias[0].reshape(1, -1, 1, 1), axis=1)
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
    check_4d(op, "input", x)
    check_4d(op, "weight", w)
    check_same_dtype(op, input=x, weight=w, bias=b)
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
        geometry.positive_pair(stride, "stride", op, shapes),
        geometry.non_negative_pair(padding, "padding", op, shapes),
        geometry.positive_pair(dilation, "dilation", op, shapes),
    )


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d`` (groups=1).

    input: (N, C_in, H, W), weight: (C_out, C_in, kh, kw), bias: (C_out,) or None.
    """
    op = "conv2d"
    shapes, stride, padding, dilation = _conv_arguments(
        op, input, weight, bias, stride, padding, dilation, weight_layout="(C_out, C_in, kh, kw)"
    )
    geometry.checked_output_hw(
        op, input.shape[2:], weight.shape[2:], stride, padding, dilation, shapes
    )
    backend = kernel_backend(op, input=input, weight=weight, bias=bias)
    biases = () if bias is None else (bias,)
    return _Conv2d.apply(
        input, weight, *biases, stride=stride, padding=padding, dilation=dilation, backend=backend
    )


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     dilation=1) -> Tensor:  # fmt: skip
    """Transposed convolution ("deconvolution"), as ``torch.nn.functional.conv_transpose2d``.

    input: (N, C_in, H, W), weight: (C_in, C_out, kh, kw), bias: (C_out,) or None.
    Output size: (H - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1.
    """
    op = "conv_transpose2d"
    shapes, stride, padding, dilation = _conv_arguments(
        op, input, weight, bias, stride, padding, dilation, weight_layout="(C_in, C_out, kh, kw)"
    )
    output_padding = geometry.non_negative_pair(output_padding, "output_padding", op, shapes)
    # PyTorch also allows output_padding < dilation; here it must be < stride, the
    # case where it picks one of the input sizes a strided conv2d maps to the same
    # output size (conv_transpose2d is that conv2d's input gradient).
    if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
        raise ValueError(
            f"{op}: output_padding {output_padding} must be smaller than stride {stride} ({shapes})"
        )
    output_hw = tuple(
        geometry.transposed_output_size(*axis)
        for axis in zip(
            input.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation
        )
    )
    if min(output_hw) < 1:
        raise ValueError(
            f"{op}: output size would be {min(output_hw)} < 1 ({shapes}, "
            f"stride {stride}, padding {padding})"
        )
    backend = kernel_backend(op, input=input, weight=weight, bias=bias)
    biases = () if bias is None else (bias,)
    return _ConvTranspose2d.apply(
        input,
        weight,
        *biases,
        output_hw=output_hw,
        stride=stride,
        padding=padding,
        dilation=dilation,
        backend=backend,
    )


# --------------------------------------------------------------- unfold / fold


class _Unfold(Function):
    """``window`` = (kernel, stride, padding, dilation), each an (h, w) pair."""

    def forward(self, x, window, backend):
        self.input_hw, self.window, self.backend = x.shape[2:], window, backend
        return backend.im2col(x, *window)

    def backward(self, g_cols):
        return self.backend.col2im(g_cols, self.input_hw, *self.window)


class _Fold(Function):
    def forward(self, cols, output_hw, window, backend):
        self.window, self.backend = window, backend
        return backend.col2im(cols, output_hw, *window)

    def backward(self, gy):
        return self.backend.im2col(gy, *self.window)


def _with_batch(op, input, ndim: int, layout: str):
    """``input`` with its batch axis, and whether it came without one: PyTorch's unfold
    and fold also take a single sample (``ndim - 1`` axes, no N)."""
    check_tensor(op, "input", input)
    if input.ndim == ndim:
        return input, False
    if input.ndim == ndim - 1:
        return input.reshape(1, *input.shape), True
    raise ValueError(
        f"{op}: input must be {ndim}-D {layout} or {ndim - 1}-D without N, got shape {input.shape}"
    )


def _window_arguments(op, shapes, kernel_size, dilation, padding, stride):
    """unfold's and fold's window pairs: (kernel, stride, padding, dilation)."""
    return (
        geometry.positive_pair(kernel_size, "kernel_size", op, shapes),
        geometry.positive_pair(stride, "stride", op, shapes),
        geometry.non_negative_pair(padding, "padding", op, shapes),
        geometry.positive_pair(dilation, "dilation", op, shapes),
    )


def unfold(input, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """im2col, as ``torch.nn.functional.unfold``: every sliding window as a column.

    input (N, C, H, W) -> (N, C·kh·kw, L), L = H_out·W_out the number of windows.
    Row (c, i, j) of column l = oh·W_out + ow holds the padded input at
    (c, oh·stride + i·dilation, ow·stride + j·dilation).  A convolution is then one
    matrix product: ``weight.reshape(C_out, -1) @ unfold(input, k)``.
    A 3-D input (C, H, W) gives a 2-D result, as in PyTorch.
    """
    op = "unfold"
    x, unbatched = _with_batch(op, input, 4, "(N, C, H, W)")
    shapes = f"input {input.shape}"
    window = _window_arguments(op, shapes, kernel_size, dilation, padding, stride)
    geometry.checked_output_hw(op, x.shape[2:], *window, shapes)
    cols = _Unfold.apply(x, window=window, backend=kernel_backend(op, input=input))
    return cols.reshape(*cols.shape[1:]) if unbatched else cols


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """col2im, as ``torch.nn.functional.fold``: add every column back onto its window.

    input (N, C·kh·kw, L) -> (N, C, *output_size).  Where windows overlap their
    values add up, so ``fold(unfold(x))`` is x times the number of windows covering
    each pixel, and fold is the adjoint (transpose) of unfold.
    A 2-D input (C·kh·kw, L) gives a 3-D result, as in PyTorch.
    """
    op = "fold"
    cols, unbatched = _with_batch(op, input, 3, "(N, C*kh*kw, L)")
    shapes = f"input {input.shape}, output_size {output_size!r}"
    output_hw = geometry.positive_pair(output_size, "output_size", op, shapes)
    window = _window_arguments(op, shapes, kernel_size, dilation, padding, stride)
    kernel, stride, padding, dilation = window
    taps = kernel[0] * kernel[1]
    if cols.shape[1] % taps:
        raise ValueError(
            f"{op}: input has {cols.shape[1]} rows, not a multiple of kernel_size {kernel} "
            f"({taps} taps per channel); {shapes}"
        )
    blocks = geometry.checked_output_hw(op, output_hw, *window, shapes)
    if cols.shape[2] != blocks[0] * blocks[1]:
        raise ValueError(
            f"{op}: input has {cols.shape[2]} columns but output_size {output_hw} with kernel_size "
            f"{kernel}, stride {stride}, padding {padding}, dilation {dilation} has "
            f"{blocks[0]}x{blocks[1]} = {blocks[0] * blocks[1]} windows; {shapes}"
        )
    backend = kernel_backend(op, input=input)
    y = _Fold.apply(cols, output_hw=output_hw, window=window, backend=backend)
    return y.reshape(*y.shape[1:]) if unbatched else y
