"""Layers: thin Modules around minidl.functional, initialised as in PyTorch."""

from __future__ import annotations

import math

import numpy as np

from minidl import functional as F
from minidl.creation import random_generator
from minidl.nn.module import Module, Parameter
from minidl.tensor import Tensor


def _uniform(shape, bound, rng, dtype):
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class _ConvBase(Module):
    """Kaiming-uniform weights (a=√5) and a uniform bias, PyTorch's defaults:
    both bounded by 1/√fan_in, where fan_in = weight.shape[1]·kh·kw.  Drawn from
    minidl's shared generator (``minidl.manual_seed``), or a fresh one if ``seed``."""

    def __init__(self, weight_shape, bias_size, bias, dtype, seed):
        super().__init__()
        rng = random_generator(seed)
        fan_in = weight_shape[1] * weight_shape[2] * weight_shape[3]
        bound = 1 / math.sqrt(fan_in)
        self.weight = Parameter(_uniform(weight_shape, bound, rng, dtype))
        self.bias = Parameter(_uniform((bias_size,), bound, rng, dtype)) if bias else None


class Conv2d(_ConvBase):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, bias=True, dtype=np.float32, seed=None):
        kh, kw = _pair(kernel_size)
        super().__init__((out_channels, in_channels, kh, kw), out_channels, bias, dtype, seed)
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        o, i, kh, kw = self.weight.shape
        return f"{i}, {o}, kernel_size=({kh}, {kw}), stride={self.stride}, padding={self.padding}"


class ConvTranspose2d(_ConvBase):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, dilation=1, bias=True, dtype=np.float32, seed=None):
        kh, kw = _pair(kernel_size)
        super().__init__((in_channels, out_channels, kh, kw), out_channels, bias, dtype, seed)
        self.stride, self.padding = stride, padding
        self.output_padding, self.dilation = output_padding, dilation

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.dilation)

    def extra_repr(self):
        i, o, kh, kw = self.weight.shape
        return f"{i}, {o}, kernel_size=({kh}, {kw}), stride={self.stride}, padding={self.padding}"


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, return_indices=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.return_indices = return_indices

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.return_indices)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class Upsample(Module):
    """Nearest-neighbour upsampling by an integer factor."""

    def __init__(self, scale_factor=2):
        super().__init__()
        self.scale_factor = scale_factor

    def forward(self, x):
        return F.upsample_nearest(x, self.scale_factor)


class ReflectionPad2d(Module):
    def __init__(self, padding):
        super().__init__()
        self.padding = padding

    def forward(self, x):
        return F.reflection_pad2d(x, self.padding)


class _Norm2d(Module):
    def __init__(self, num_features, eps, affine, dtype):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.weight = Parameter(np.ones(num_features, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype)) if affine else None

    def _check(self, x):
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}: expected (N, {self.num_features}, H, W), got {x.shape}"
            )


class BatchNorm2d(_Norm2d):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype=np.float32):
        super().__init__(num_features, eps, affine, dtype)
        self.momentum = momentum
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype)))
        self.register_buffer("running_var", Tensor(np.ones(num_features, dtype)))

    def forward(self, x):
        self._check(x)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training, momentum=self.momentum, eps=self.eps)


class InstanceNorm2d(_Norm2d):
    """Per-image, per-channel normalisation; no learned scale unless ``affine``."""

    def __init__(self, num_features, eps=1e-5, affine=False, dtype=np.float32):
        super().__init__(num_features, eps, affine, dtype)

    def forward(self, x):
        self._check(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


class Sequential(Module):
    """Apply modules one after the other; they are named "0", "1", ..."""

    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            setattr(self, str(i), module)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x
