"""Pooling: max (with its switches), max unpooling, average.

The backend computes the windows; the switches that max pooling returns are what
max unpooling (and the deconvnet of Zeiler & Fergus) puts values back at.
"""

from __future__ import annotations

from minidl import geometry
from minidl.autograd import Function
from minidl.functional.checks import check_4d, kernel_backend
from minidl.tensor import Tensor


def _pool_geometry(op, x, kernel_size, stride, padding):
    """Checked (kernel, stride, padding) pairs; stride defaults to the kernel size."""
    check_4d(op, "input", x)
    shapes = f"input {x.shape}"
    kernel = geometry.positive_pair(kernel_size, "kernel_size", op, shapes)
    stride = kernel if stride is None else geometry.positive_pair(stride, "stride", op, shapes)
    padding = geometry.non_negative_pair(padding, "padding", op, shapes)
    return kernel, stride, padding, shapes


def _pooling_arguments(op, x, kernel_size, stride, padding):
    """What max_pool2d and avg_pool2d accept: padding at most half the kernel, a window that fits."""
    kernel, stride, padding, shapes = _pool_geometry(op, x, kernel_size, stride, padding)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{op}: padding {padding} must be at most half the kernel size {kernel} ({shapes})"
        )
    shapes = f"input {x.shape}, kernel_size {kernel}"
    geometry.checked_output_hw(op, x.shape[2:], kernel, stride, padding, (1, 1), shapes)
    return kernel, stride, padding


class _MaxPool2d(Function):
    def forward(self, x, kernel, stride, padding, backend):
        self.input_hw, self.backend = x.shape[2:], backend
        self.geometry = kernel, stride, padding
        y, self.indices = backend.max_pool2d(x, kernel, stride, padding)
        return y

    def backward(self, gy):
        return self.backend.max_pool2d_grad(gy, self.indices, self.input_hw, *self.geometry)


def max_pool2d(input, kernel_size, stride=None, padding=0, return_indices=False):
    """Max pooling; with ``return_indices`` also the switches (flat h*W+w per plane)."""
    kernel, stride, padding = _pooling_arguments("max_pool2d", input, kernel_size, stride, padding)
    backend = kernel_backend("max_pool2d", input=input)
    y, function = _MaxPool2d.run(
        input, kernel=kernel, stride=stride, padding=padding, backend=backend
    )
    if not return_indices:
        return y
    # (int64 as in PyTorch; the cpu backend keeps int32 switches for itself)
    return y, Tensor(function.indices.astype("int64", copy=False), device=input.device)


class _MaxUnpool2d(Function):
    def forward(self, x, indices, output_hw, backend):
        self.indices, self.backend = indices, backend
        return backend.max_unpool2d(x, indices, output_hw)

    def backward(self, gy):
        return self.backend.max_unpool2d_grad(gy, self.indices)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Put each value back at its switch, zeros elsewhere (the inverse of max_pool2d).

    Output size defaults to (H - 1)·stride - 2·padding + kernel_size.  When
    overlapping windows chose the same switch, one value overwrites the other
    there (as in PyTorch), yet the backward pass gives the gradient to both.
    """
    op = "max_unpool2d"
    kernel, stride, padding, _ = _pool_geometry(op, input, kernel_size, stride, padding)
    if not isinstance(indices, Tensor) or indices.shape != input.shape:
        got = indices.shape if isinstance(indices, Tensor) else type(indices).__name__
        raise ValueError(
            f"{op}: indices must be a Tensor of the input's shape {input.shape}, got {got}"
        )
    if output_size is None:
        output_hw = tuple(
            geometry.transposed_output_size(*axis)
            for axis in zip(input.shape[2:], kernel, stride, padding)
        )
    else:
        output_hw = tuple(int(s) for s in tuple(output_size)[-2:])
    if min(output_hw) < 1:
        raise ValueError(f"{op}: output size {output_hw} < 1 for input {input.shape}")
    plane = output_hw[0] * output_hw[1]
    switches = indices.data
    if switches.size and (int(switches.min()) < 0 or int(switches.max()) >= plane):
        raise ValueError(
            f"{op}: indices must lie in [0, {plane}) for output size {output_hw}, found "
            f"[{int(switches.min())}, {int(switches.max())}]"
        )
    backend = kernel_backend(op, input=input, indices=indices)
    return _MaxUnpool2d.apply(input, indices=switches, output_hw=output_hw, backend=backend)


class _AvgPool2d(Function):
    def forward(self, x, kernel, stride, padding, backend):
        self.input_hw, self.backend = x.shape[2:], backend
        self.options = kernel, stride, padding
        return backend.avg_pool2d(x, kernel, stride, padding)

    def backward(self, gy):
        return self.backend.avg_pool2d_grad(gy, self.input_hw, *self.options)


def avg_pool2d(input, kernel_size, stride=None, padding=0) -> Tensor:
    """Average pooling; padded zeros count in the divisor (count_include_pad=True)."""
    kernel, stride, padding = _pooling_arguments("avg_pool2d", input, kernel_size, stride, padding)
    backend = kernel_backend("avg_pool2d", input=input)
    return _AvgPool2d.apply(input, kernel=kernel, stride=stride, padding=padding, backend=backend)
