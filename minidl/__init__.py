"""minidl: a from-scratch deep-learning framework for learning how it works inside.

The names most programs need are here, as in PyTorch::

    import minidl
    import minidl.functional as F

    x = minidl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    with minidl.no_grad():
        ...

(``minidl.tensor`` is the function that makes a Tensor; the file that defines it
is ``minidl/tensor.py``, imported as ``from minidl.tensor import Tensor``.)
Models, weights and images live in their own modules (``minidl.models``,
``minidl.weights``, ``minidl.image``) so that ``import minidl`` stays quick.
"""

from minidl import functional, nn, optim
from minidl.autograd import is_grad_enabled, no_grad
from minidl.gradcheck import gradcheck
from minidl.tensor import Tensor, ones, randn, tensor, zeros
from minidl.tensor_ops import concat, stack

__version__ = "0.1.0"

__all__ = [
    "Tensor", "concat", "functional", "gradcheck", "is_grad_enabled", "nn", "no_grad", "ones",
    "optim", "randn", "stack", "tensor", "zeros",
]
