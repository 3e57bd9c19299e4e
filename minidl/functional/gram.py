"""Gram matrices: the channel correlations that style transfer matches."""

from __future__ import annotations

from minidl.autograd import Function
from minidl.functional.checks import check_4d, kernel_backend
from minidl.tensor import Tensor


class _Gram(Function):
    def forward(self, x, backend):
        self.x, self.backend = x, backend
        return backend.gram(x)

    def backward(self, gG):
        return self.backend.gram_grad(gG, self.x)


def gram_matrix(input) -> Tensor:
    """Channel correlations G[n] = F·Fᵀ / (C·H·W), F = input[n] as (C, H·W): (N, C, C)."""
    check_4d("gram_matrix", "input", input)
    return _Gram.apply(input, backend=kernel_backend("gram_matrix", input=input))
