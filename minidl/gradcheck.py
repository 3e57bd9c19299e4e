"""Numerical gradient check: does backward() agree with central differences?

For a function ``fn(*inputs) -> Tensor`` we compare, for every element of every
input that requires grad, the gradient autograd computes with

    (L(x + eps) - L(x - eps)) / (2 eps),      L = sum(fn(*inputs) * R)

where R is a fixed random tensor: one random projection turns any output shape
into a scalar while still testing every output element.  Run it in float64 --
in float32 the rounding error of the difference quotient is as large as the
tolerance.

As PyTorch's, it leaves every ``.grad`` as it was: the analytic gradients are
collected with :func:`minidl.autograd.grad`, which never writes ``.grad``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minidl.autograd import grad, no_grad
from minidl.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` with a report of the worst element."""


@dataclass
class _Worst:
    input_index: int = -1
    position: tuple = ()
    analytic: float = 0.0
    numeric: float = 0.0
    excess: float = -np.inf  # |a - n| - (atol + rtol |n|); > 0 means failure


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              seed: int = 0) -> bool:
    """Return True if analytic and numerical gradients agree, else raise GradcheckError.

    ``inputs`` is a list of Tensors; only those with ``requires_grad=True`` are
    checked.  The tensors' data is perturbed in place and restored; their ``.grad``
    is not touched.
    """
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    output = fn(*inputs)
    projection = np.random.default_rng(seed).standard_normal(output.shape)
    projection = output.xp.asarray(projection, dtype=output.dtype)

    def projected_loss() -> float:
        with no_grad():
            return float((fn(*inputs).data * projection).sum())

    analytic_grads = grad(output, [inputs[i] for i in checked], projection)
    worst = _Worst()
    for i, analytic in zip(checked, analytic_grads):
        t = inputs[i]
        analytic = analytic.data if analytic is not None else t.xp.zeros(t.shape, t.dtype)
        # Index t.data element by element (not through reshape(-1), which copies a
        # non-contiguous array, so writing to it would not perturb the input).
        for position in np.ndindex(*t.shape):
            original = float(t.data[position])
            t.data[position] = original + eps
            plus = projected_loss()
            t.data[position] = original - eps
            minus = projected_loss()
            t.data[position] = original
            numeric = (plus - minus) / (2 * eps)
            value = float(analytic[position])
            excess = abs(value - numeric) - (atol + rtol * abs(numeric))
            if excess > worst.excess:
                worst = _Worst(i, tuple(int(k) for k in position), value, numeric, excess)
    if worst.excess > 0:
        raise GradcheckError(
            f"gradcheck failed: input {worst.input_index} (shape {inputs[worst.input_index].shape}) "
            f"at {worst.position}: analytic {worst.analytic:.6g} vs numerical {worst.numeric:.6g} "
            f"(|difference| {abs(worst.analytic - worst.numeric):.3g} > atol {atol} + rtol {rtol}·|numerical|)"
        )
    return True
