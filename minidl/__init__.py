"""minidl: a from-scratch deep-learning framework for learning how it works inside.

The names most programs need are here, as in PyTorch::

    import minidl
    import minidl.functional as F

    x = minidl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    with minidl.no_grad():
        ...

(``minidl.tensor`` is the function that makes a Tensor; the file that defines it
is ``minidl/tensor.py``, imported as ``from minidl.tensor import Tensor``.)
The other makers (``zeros``, ``randn``, ``arange``, ``manual_seed`` ...) live in
``minidl/creation.py``.  ``docs/from_pytorch.md`` lists what differs from PyTorch.
Models, weights and images live in their own modules (``minidl.models``,
``minidl.weights``, ``minidl.image``) so that ``import minidl`` stays quick.
"""

import numpy as np

from minidl import functional, nn, optim
from minidl.allocator import keep_freed_memory
from minidl.autograd import is_grad_enabled, no_grad
from minidl.creation import (
    arange,
    empty,
    empty_like,
    full,
    full_like,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randn,
    randn_like,
    zeros,
    zeros_like,
)
from minidl.gradcheck import gradcheck
from minidl.tensor import Tensor, tensor
from minidl.tensor_ops import cat, concat, stack

# dtype names as torch.float32 etc.; they are numpy's dtypes.
float32, float64, int64, bool_ = np.float32, np.float64, np.int64, np.bool_
# torch.float, .double, .long (left out of __all__: `import *` must not hide the builtin float)
float, double, long = float32, float64, int64

__version__ = "0.1.0"

# Reuse freed memory instead of page-faulting fresh memory in every pass: 10-15%
# faster at VGG16 sizes, same peak (minidl/allocator.py says why; MINIDL_KEEP_MEMORY=0: off).
KEEPS_FREED_MEMORY = keep_freed_memory()

__all__ = [
    "Tensor", "arange", "cat", "concat", "empty", "empty_like", "float32", "float64", "full",
    "full_like", "functional", "gradcheck", "int64", "is_grad_enabled", "manual_seed", "nn",
    "no_grad", "ones", "ones_like", "optim", "rand", "rand_like", "randn", "randn_like", "stack",
    "tensor", "zeros", "zeros_like",
]
