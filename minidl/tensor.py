"""Tensor: an array on a device, its gradient, and the Function that made it.

A Tensor wraps a numpy array (devices ``"cpu"`` and ``"cuda-emu"``) or a cupy
array (``"cuda"``).  Arithmetic on Tensors builds a graph of
:class:`~minidl.autograd.Function` objects; ``loss.backward()`` walks it and
fills ``.grad`` of every leaf tensor created with ``requires_grad=True``.
The operations themselves live in :mod:`minidl.tensor_ops`.
"""

from __future__ import annotations

import numpy as np

from minidl import autograd
from minidl.backends import DEVICES, get_backend

FLOAT_DTYPES = (np.float32, np.float64)


def _array_module(device: str):
    return get_backend(device).xp


def _default_dtype(data) -> np.dtype:
    """numpy arrays and scalars keep float32/float64/integer/bool; everything else is float32."""
    if isinstance(data, (np.ndarray, np.generic)) and (data.dtype in FLOAT_DTYPES or data.dtype.kind in "iub"):
        return data.dtype
    return np.dtype(np.float32)


class Tensor:
    """An n-dimensional array that remembers how it was computed."""

    __array_priority__ = 1000  # numpy scalars on the left defer to Tensor operators

    def __init__(self, data, device: str = "cpu", requires_grad: bool = False):
        if device not in DEVICES:
            raise ValueError(f"Tensor: unknown device {device!r}; expected one of {DEVICES}")
        if isinstance(data, np.ndarray) == (device == "cuda"):
            where = "a numpy" if isinstance(data, np.ndarray) else f"a {type(data).__name__}"
            raise TypeError(
                f"Tensor: {where} array cannot live on device {device!r} (cpu and cuda-emu hold "
                "numpy arrays, cuda holds cupy arrays); use minidl.tensor(data, device=...)"
            )
        self.data = data
        self.device = device
        self.grad = None  # an array like data, filled by backward()
        self.creator = None  # the Function that produced this tensor, if any
        if requires_grad and self.data.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"Tensor: only float32/float64 tensors can require grad, got {self.data.dtype}"
            )
        self.requires_grad = requires_grad

    # ----------------------------------------------------------------- basics
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def xp(self):
        """The array module of this tensor's device (numpy or cupy)."""
        return _array_module(self.device)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.numpy()!r}, device={self.device!r}{grad})"

    def numpy(self) -> np.ndarray:
        """The data as a numpy array (copied from the GPU when needed)."""
        if self.device == "cuda":
            return self.data.get()
        return self.data

    def item(self) -> float:
        if self.size != 1:
            raise ValueError(f"item: tensor of shape {self.shape} has {self.size} elements, not 1")
        return self.numpy().reshape(()).item()

    def __bool__(self) -> bool:
        """Truth of a one-element tensor; for more elements an error, as in numpy and
        PyTorch (so ``if x == y`` or ``x in some_list`` cannot silently be True)."""
        if self.size != 1:
            raise ValueError(
                f"bool: the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use (x == y).numpy().all() or .any()"
            )
        return bool(self.item())

    def __float__(self) -> float:
        """``float(loss)`` for a one-element tensor (an L-BFGS closure may return the loss)."""
        return float(self.item())

    def to(self, device: str) -> Tensor:
        """A copy on ``device`` (no copy if already there); gradients flow back."""
        if device == self.device:
            return self
        from minidl.tensor_ops import ToDevice

        return ToDevice.apply(self, device=device)

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data, device=self.device)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        self.requires_grad = flag
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def accumulate_grad(self, grad) -> None:
        if grad.shape != self.data.shape:
            raise RuntimeError(
                f"backward: gradient of shape {grad.shape} for a tensor of shape {self.shape}"
            )
        grad = self.xp.asarray(grad, dtype=self.dtype)  # an array (not a numpy scalar), our dtype
        if self.grad is None:
            self.grad = grad.copy()
        else:
            self.grad += grad  # in place: our own copy, and it stays an array even when 0-d

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Fill ``.grad`` of every leaf this tensor depends on.

        ``grad`` is d(something)/d(self); it may be omitted only for a scalar,
        where it defaults to 1.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad (no input had requires_grad=True, "
                "or it was computed under no_grad())"
            )
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for scalar outputs; this "
                    f"tensor has shape {self.shape}, so pass grad= of that shape"
                )
            grad = self.xp.ones(self.data.shape, dtype=self.dtype)
        else:
            grad = grad.data if isinstance(grad, Tensor) else self.xp.asarray(grad, self.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(
                    f"backward: grad has shape {tuple(grad.shape)} but the tensor has {self.shape}"
                )
        autograd.run_backward(self, grad, retain_graph=retain_graph)

    # ------------------------------------------------------------- operators
    # Each operator delegates to a Function in minidl.tensor_ops.
    def __add__(self, other):
        from minidl.tensor_ops import add

        return add(self, other)

    def __radd__(self, other):
        from minidl.tensor_ops import add

        return add(other, self)

    def __sub__(self, other):
        from minidl.tensor_ops import sub

        return sub(self, other)

    def __rsub__(self, other):
        from minidl.tensor_ops import sub

        return sub(other, self)

    def __mul__(self, other):
        from minidl.tensor_ops import mul

        return mul(self, other)

    def __rmul__(self, other):
        from minidl.tensor_ops import mul

        return mul(other, self)

    def __truediv__(self, other):
        from minidl.tensor_ops import div

        return div(self, other)

    def __rtruediv__(self, other):
        from minidl.tensor_ops import div

        return div(other, self)

    def __pow__(self, other):
        from minidl.tensor_ops import power

        return power(self, other)

    def __rpow__(self, other):
        from minidl.tensor_ops import power

        return power(other, self)

    def __matmul__(self, other):
        from minidl.tensor_ops import matmul

        return matmul(self, other)

    def __rmatmul__(self, other):
        from minidl.tensor_ops import matmul

        return matmul(other, self)

    def __neg__(self):
        from minidl.tensor_ops import Neg

        return Neg.apply(self)

    def __getitem__(self, index):
        from minidl.tensor_ops import getitem

        return getitem(self, index)

    # Comparisons give boolean tensors and carry no gradient.
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other), device=self.device)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    __hash__ = object.__hash__

    # --------------------------------------------------------------- methods
    def sum(self, axis=None, keepdims=False):
        from minidl.tensor_ops import Sum

        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        from minidl.tensor_ops import Mean

        return Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        from minidl.tensor_ops import Max

        return Max.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        from minidl.tensor_ops import Reshape

        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

    def permute(self, *axes):
        """Reorder the axes: output axis i is input axis ``axes[i]`` (as in PyTorch)."""
        from minidl.tensor_ops import Permute

        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return Permute.apply(self, axes=axes)

    def transpose(self, dim0: int, dim1: int):
        """Swap two axes (as in PyTorch; numpy's ``transpose`` is :meth:`permute`)."""
        axes = list(range(self.ndim))
        try:
            axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        except IndexError:
            raise ValueError(
                f"transpose: axes {dim0} and {dim1} do not both exist in a tensor of shape "
                f"{self.shape}"
            ) from None
        return self.permute(axes)

    @property
    def T(self):
        """All axes reversed."""
        return self.permute(tuple(reversed(range(self.ndim))))

    def clip(self, low=None, high=None):
        from minidl.tensor_ops import Clip

        return Clip.apply(self, low=low, high=high)

    def exp(self):
        from minidl.tensor_ops import Exp

        return Exp.apply(self)

    def log(self):
        from minidl.tensor_ops import Log

        return Log.apply(self)

    def sqrt(self):
        from minidl.tensor_ops import Sqrt

        return Sqrt.apply(self)

    def abs(self):
        from minidl.tensor_ops import Abs

        return Abs.apply(self)


def check_same_device(op: str, tensors) -> str:
    """The common device of ``tensors``; a clear error if they differ."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        shapes = ", ".join(f"{t.shape} on {t.device}" for t in tensors)
        raise ValueError(f"{op}: inputs are on different devices ({shapes}); use .to(device)")
    return devices.pop()


def tensor(data, device: str = "cpu", dtype=None, requires_grad: bool = False) -> Tensor:
    """Make a Tensor from a list, scalar, numpy array or Tensor.

    Python numbers and lists become float32 unless ``dtype`` says otherwise
    (friendlier than int64 for hand-written examples); numpy arrays keep a
    float32, float64, integer or bool dtype, and so do numpy scalars such as
    ``np.float64(2.0)``.
    """
    if isinstance(data, Tensor):
        data = data.numpy()
    if dtype is None:
        dtype = _default_dtype(data)
    array = np.asarray(data)
    array = array.astype(dtype, copy=True)
    xp = _array_module(device)
    return Tensor(xp.asarray(array), device=device, requires_grad=requires_grad)


def zeros(shape, device="cpu", dtype=np.float32, requires_grad=False) -> Tensor:
    xp = _array_module(device)
    return Tensor(xp.zeros(shape, dtype=dtype), device=device, requires_grad=requires_grad)


def ones(shape, device="cpu", dtype=np.float32, requires_grad=False) -> Tensor:
    xp = _array_module(device)
    return Tensor(xp.ones(shape, dtype=dtype), device=device, requires_grad=requires_grad)


def randn(*shape, device="cpu", dtype=np.float32, requires_grad=False, seed=None) -> Tensor:
    array = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return tensor(array, device=device, requires_grad=requires_grad)
