"""Activations (relu, leaky_relu, sigmoid, tanh) and softmax / log_softmax.

Each is a Function whose backward pass reuses what the forward pass computed:
ReLU, sigmoid, tanh and softmax keep their output, whose values give the
derivative directly.
"""

from __future__ import annotations

from minidl.autograd import Function
from minidl.backends import threads
from minidl.functional.checks import check_tensor
from minidl.tensor import Tensor
from minidl.tensor_ops import array_module


class _Relu(Function):
    # Saving the output, not a mask: the next layer keeps that same array anyway.
    # (threads.elementwise: on the cpu, a part of the array per core.)
    def forward(self, x):
        xp = array_module(x)
        self.out = threads.elementwise(lambda v, out=None: xp.maximum(v, 0, out=out), x)
        return self.out

    def backward(self, g):
        xp = array_module(g)
        return threads.elementwise(lambda g, y, out=None: xp.multiply(g, y > 0, out=out), g, self.out)


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


def relu(input) -> Tensor:
    return _Relu.apply(input)


def leaky_relu(input, negative_slope: float = 0.01) -> Tensor:
    return _LeakyRelu.apply(input, negative_slope=negative_slope)


def sigmoid(input) -> Tensor:
    return _Sigmoid.apply(input)


def tanh(input) -> Tensor:
    return _Tanh.apply(input)


# --------------------------------------------------------------- softmax


def _log_sum_exp(x, dim):
    """log Σ exp(x) along ``dim`` (kept), shifted by the max so exp never overflows."""
    xp = array_module(x)
    top = x.max(axis=dim, keepdims=True)
    return top + xp.log(xp.exp(x - top).sum(axis=dim, keepdims=True))


class _Softmax(Function):
    def forward(self, x, dim):
        self.dim = dim
        self.out = array_module(x).exp(x - _log_sum_exp(x, dim))
        return self.out

    def backward(self, g):
        # Jacobian-vector product of softmax s: s ⊙ (g - Σ g·s)
        s = self.out
        return s * (g - (g * s).sum(axis=self.dim, keepdims=True))


class _LogSoftmax(Function):
    def forward(self, x, dim):
        self.dim = dim
        out = x - _log_sum_exp(x, dim)
        self.softmax = array_module(x).exp(out)
        return out

    def backward(self, g):
        return g - self.softmax * g.sum(axis=self.dim, keepdims=True)


def _softmax_dim(op: str, input, dim) -> int:
    check_tensor(op, "input", input)
    if dim is None:
        raise TypeError(
            f"{op}: give dim=, the axis whose entries should sum to 1 (input {input.shape})"
        )
    if not -input.ndim <= dim < input.ndim or input.ndim == 0:
        raise ValueError(f"{op}: dim {dim} is out of range for input of shape {input.shape}")
    return dim % input.ndim


def softmax(input, dim=None) -> Tensor:
    """exp(x) / Σ exp(x) along ``dim``: entries in (0, 1) that sum to 1, as in PyTorch."""
    return _Softmax.apply(input, dim=_softmax_dim("softmax", input, dim))


def log_softmax(input, dim=None) -> Tensor:
    """log(softmax(x)), computed as x - logΣexp(x) so that it stays finite for large |x|."""
    return _LogSoftmax.apply(input, dim=_softmax_dim("log_softmax", input, dim))
