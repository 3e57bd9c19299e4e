"""Tensor: an array on a device, its gradient, and the Function that made it.

A Tensor wraps a numpy array (devices ``"cpu"`` and ``"cuda-emu"``) or a cupy
array (``"cuda"``).  Arithmetic on Tensors builds a graph of
:class:`~minidl.autograd.Function` objects; ``loss.backward()`` walks it and
fills ``.grad`` of every leaf tensor created with ``requires_grad=True``.
The operations themselves live in :mod:`minidl.tensor_ops`.

``.grad`` is itself a Tensor, with no graph, as in PyTorch.  In-place methods
(``x += y``, ``x.zero_()``, ``x.clamp_(0, 1)`` ...) change the tensor object
itself, never rebind it; their rules are in :meth:`Tensor._update_`.

Layering: :mod:`minidl.autograd` (the graph) knows nothing of this module;
this module imports it; :mod:`minidl.tensor_ops` (the Functions behind the
operators) imports both.  Tensor's operator methods reach tensor_ops through
:func:`_ops` when they are called, not when this module is imported.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from minidl import autograd
from minidl.backends import DEVICES, get_backend

FLOAT_DTYPES = (np.float32, np.float64)


LEAF_INPLACE_ERROR = "a leaf Variable that requires grad is being used in an in-place operation."


def _ops():
    """The module of Functions behind the operators, imported when first needed."""
    import minidl.tensor_ops

    return minidl.tensor_ops


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
        self._grad = None  # a Tensor like self, filled by backward()
        self.creator = None  # the Function that produced this tensor, if any
        self._version = [0]  # bumped by in-place changes; see minidl.autograd
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

    def size(self, dim: int | None = None):
        """The shape (a tuple), or the length of axis ``dim``, as PyTorch's ``size()``."""
        if dim is None:
            return self.shape
        if not -self.ndim <= dim < self.ndim:
            raise ValueError(f"size: dim {dim} is out of range for a tensor of shape {self.shape}")
        return self.shape[dim]

    def numel(self) -> int:
        """The number of elements."""
        return int(self.data.size)

    def dim(self) -> int:
        """The number of axes (as ``ndim``)."""
        return self.data.ndim

    @property
    def grad(self):
        """d loss / d self after ``backward()``: a Tensor with no graph, or None."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(
                    f"grad: assign a Tensor or None, got {type(value).__name__}; "
                    "wrap an array with minidl.tensor(array)"
                )
            if (value.shape, value.dtype, value.device) != (self.shape, self.dtype, self.device):
                raise ValueError(
                    f"grad: a {value.shape} {value.dtype} tensor on {value.device} cannot be the "
                    f"gradient of a {self.shape} {self.dtype} tensor on {self.device}"
                )
        self._grad = value

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
        """The data as a numpy array: the same memory on the CPU, a copy from the GPU."""
        if self.device == "cuda":
            return self.data.get()
        return self.data

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """``np.asarray(x)`` and numpy functions (``np.testing.assert_allclose``) see the data."""
        array = self.numpy()
        if dtype is not None:
            array = array.astype(dtype, copy=False)
        return array.copy() if copy else array

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.numel() != 1:
            raise ValueError(f"item: tensor of shape {self.shape} has {self.numel()} elements, not 1")
        return self.numpy().reshape(()).item()

    def __bool__(self) -> bool:
        """Truth of a one-element tensor; for more elements an error, as in numpy and
        PyTorch (so ``if x == y`` or ``x in some_list`` cannot silently be True)."""
        if self.numel() != 1:
            raise ValueError(
                f"bool: the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use (x == y).numpy().all() or .any()"
            )
        return bool(self.item())

    def __float__(self) -> float:
        """``float(loss)`` for a one-element tensor (an L-BFGS closure may return the loss)."""
        return float(self.item())

    def detach(self) -> Tensor:
        """The same data (and version counter), cut from the graph."""
        detached = Tensor(self.data, device=self.device)
        detached._version = self._version
        return detached

    def _result(self, array, device: str) -> Tensor:
        """A new plain Tensor around ``array``: how autograd wraps an op's output."""
        return Tensor(array, device=device)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        self.requires_grad = flag
        return self

    @property
    def is_leaf(self) -> bool:
        """Made by the user, not computed from tensors that require grad (PyTorch's name)."""
        return self.creator is None

    @property
    def grad_fn(self):
        """The Function that computed this tensor (PyTorch's name for ``creator``)."""
        return self.creator

    def zero_grad(self) -> None:
        self.grad = None

    def accumulate_grad(self, grad) -> None:
        """Add an array to ``.grad`` (the cheap path: no Tensor arithmetic)."""
        if grad.shape != self.data.shape:
            raise RuntimeError(
                f"backward: gradient of shape {grad.shape} for a tensor of shape {self.shape}"
            )
        grad = self.xp.asarray(grad, dtype=self.dtype)  # an array (not a numpy scalar), our dtype
        if self._grad is None:
            self._grad = Tensor(grad.copy(), device=self.device)
        else:
            self._grad.data += grad  # in place: our own copy, and it stays an array even when 0-d

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Fill ``.grad`` of every leaf this tensor depends on.

        ``gradient`` is d(something)/d(self); it may be omitted only for a scalar,
        where it defaults to 1.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad (no input had requires_grad=True, "
                "or it was computed under no_grad())"
            )
        autograd.run_backward(self, self._grad_output(gradient, "backward"), retain_graph=retain_graph)

    def _grad_output(self, grad, op: str):
        """The array d(something)/d(self) that starts a backward pass: ``grad``, or 1."""
        if grad is None:
            if self.numel() != 1:
                raise RuntimeError(
                    f"{op}: grad can be implicitly created only for scalar outputs; this "
                    f"tensor has shape {self.shape}, so pass a gradient of that shape"
                )
            return self.xp.ones(self.data.shape, dtype=self.dtype)
        grad = grad.data if isinstance(grad, Tensor) else self.xp.asarray(grad, self.dtype)
        if grad.shape != self.data.shape:
            raise ValueError(f"{op}: grad has shape {tuple(grad.shape)} but the tensor has {self.shape}")
        return grad

    # ------------------------------------------------------------- operators
    # Each operator delegates to a Function in minidl.tensor_ops.
    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().sub(self, other)

    def __rsub__(self, other):
        return _ops().sub(other, self)

    def __mul__(self, other):
        return _ops().mul(self, other)

    def __rmul__(self, other):
        return _ops().mul(other, self)

    def __truediv__(self, other):
        return _ops().div(self, other)

    def __rtruediv__(self, other):
        return _ops().div(other, self)

    def __pow__(self, other):
        return _ops().power(self, other)

    def __rpow__(self, other):
        return _ops().power(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __neg__(self):
        return _ops().Neg.apply(self)

    def __abs__(self):  # abs(x), as in PyTorch
        return self.abs()

    def __getitem__(self, index):
        return _ops().getitem(self, index)

    # -------------------------------------------------------------- in place
    def _update_(self, op: str, compute) -> Tensor:
        """Give ``self`` the value of ``compute()`` (an out-of-place Tensor op), in place.

        The rules, as in PyTorch:

        * outside ``no_grad``, a leaf that requires grad refuses (PyTorch's error):
          its gradient would describe a value it no longer holds;
        * under ``no_grad``, or when no gradient is involved at all, the values are
          written into ``self.data`` itself, and the version counter moves on, so
          that a graph which saved the old values refuses to use them;
        * outside ``no_grad``, on a tensor in a graph (``loss += term``) or updated
          from one, the op is recorded like its out-of-place twin and ``self``
          takes over the result: the same Python object with a new array (unlike
          PyTorch, a ``detach()``-ed alias keeps the old values).
        """
        grad_mode = autograd.is_grad_enabled()
        if grad_mode and self.requires_grad and self.creator is None:
            raise RuntimeError(
                f"{LEAF_INPLACE_ERROR} ({op} on a {self.shape} tensor: do it inside "
                "`with minidl.no_grad():`, as an optimiser step does)"
            )
        result = compute()
        if result.shape != self.shape or result.dtype != self.dtype:
            raise ValueError(
                f"{op}: the result is {result.shape} {result.dtype}, which cannot be written "
                f"into a {self.shape} {self.dtype} tensor"
            )
        if grad_mode and (self.requires_grad or result.requires_grad):
            self.data, self.creator = result.data, result.creator
            self.requires_grad, self._version = result.requires_grad, result._version
        else:
            self.data[...] = result.data
            self._version[0] += 1
        return self

    def __iadd__(self, other):
        return self._update_("+=", lambda: self + other)

    def __isub__(self, other):
        return self._update_("-=", lambda: self - other)

    def __imul__(self, other):
        return self._update_("*=", lambda: self * other)

    def __itruediv__(self, other):
        return self._update_("/=", lambda: self / other)

    def add_(self, other, alpha=1) -> Tensor:
        """self += alpha * other."""
        return self._update_("add_", lambda: self + (other if alpha == 1 else alpha * other))

    def sub_(self, other, alpha=1) -> Tensor:
        """self -= alpha * other."""
        return self._update_("sub_", lambda: self - (other if alpha == 1 else alpha * other))

    def mul_(self, other) -> Tensor:
        return self._update_("mul_", lambda: self * other)

    def div_(self, other) -> Tensor:
        return self._update_("div_", lambda: self / other)

    def clamp_(self, min=None, max=None) -> Tensor:  # PyTorch's names
        return self._update_("clamp_", lambda: self.clamp(min, max))

    def fill_(self, value) -> Tensor:
        return self._update_("fill_", lambda: self._result(
            self.xp.full(self.shape, value, dtype=self.dtype), self.device))

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def copy_(self, src) -> Tensor:
        """Copy ``src`` (a Tensor on any device, of any dtype, broadcastable to self,
        or an array) into self, converting as PyTorch does; gradients flow to ``src``."""
        def compute():
            source = src if isinstance(src, Tensor) else self._result(self.xp.asarray(src), self.device)
            return source.to(self.device).to(self.dtype).expand(*self.shape)

        return self._update_("copy_", compute)

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

    # ------------------------------------------------------------ reductions
    # PyTorch's dim=/keepdim=; numpy's axis=/keepdims= are accepted as aliases.
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _reduction_args("sum", dim, keepdim, axis, keepdims)
        return _ops().Sum.apply(self, axis=dim, keepdims=keepdim)

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _reduction_args("mean", dim, keepdim, axis, keepdims)
        return _ops().Mean.apply(self, axis=dim, keepdims=keepdim)

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """The largest element; given one axis ``dim``, as in PyTorch, the pair
        ``(values, indices)`` along it (for several axes at once: :meth:`amax`)."""
        return self._extreme("max", dim, keepdim, axis, keepdims)

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """The smallest element; given one axis ``dim``, the pair ``(values, indices)``."""
        return self._extreme("min", dim, keepdim, axis, keepdims)

    def _extreme(self, name, dim, keepdim, axis, keepdims):
        dim, keepdim = _reduction_args(name, dim, keepdim, axis, keepdims)
        function = _ops().Max if name == "max" else _ops().Min
        if dim is None:
            return function.apply(self, axis=None, keepdims=keepdim)
        if not isinstance(dim, (int, np.integer)):
            raise TypeError(f"{name}: dim must be one int, got {dim!r}; use a{name}(dim=...) for several")
        values = function.apply(self, axis=dim, keepdims=keepdim)
        return ValuesIndices(values, _ops().arg_extreme(self, "arg" + name, dim, keepdim))

    def amax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """The largest values over one or several axes (values only)."""
        dim, keepdim = _reduction_args("amax", dim, keepdim, axis, keepdims)
        return _ops().Max.apply(self, axis=dim, keepdims=keepdim)

    def amin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _reduction_args("amin", dim, keepdim, axis, keepdims)
        return _ops().Min.apply(self, axis=dim, keepdims=keepdim)

    def argmax(self, dim=None, keepdim=False) -> Tensor:
        """Index of the largest element (of the flattened tensor if ``dim`` is None)."""
        return _ops().arg_extreme(self, "argmax", dim, keepdim)

    def argmin(self, dim=None, keepdim=False) -> Tensor:
        return _ops().arg_extreme(self, "argmin", dim, keepdim)

    def var(self, dim=None, *, correction=None, keepdim=False, unbiased=None, axis=None,
            keepdims=None):
        """Variance: Σ(x - mean)² / (N - correction), with ``correction=1`` (unbiased)
        by default as in PyTorch; ``unbiased=False`` is the older spelling of
        ``correction=0``.  N - correction <= 0 gives nan, as in PyTorch."""
        if isinstance(dim, bool):  # x.var(False): PyTorch's old positional unbiased
            dim, unbiased = None, dim
        if unbiased is not None and correction is not None:
            raise TypeError("var: give correction= or unbiased=, not both")
        if correction is None:
            correction = 1 if unbiased is None else int(unbiased)
        dim, keepdim = _reduction_args("var", dim, keepdim, axis, keepdims)
        axes = _ops()._normalize_axes(dim, self.ndim, "var")
        count = int(np.prod([self.shape[ax] for ax in axes]))
        centred = self - self.mean(dim=axes, keepdim=True)
        squares = (centred * centred).sum(dim=axes, keepdim=keepdim)
        return squares / (count - correction) if count > correction else squares * float("nan")

    def std(self, dim=None, *, correction=None, keepdim=False, unbiased=None, axis=None,
            keepdims=None):
        """Standard deviation, the square root of :meth:`var` (same arguments)."""
        return self.var(dim, correction=correction, keepdim=keepdim, unbiased=unbiased,
                        axis=axis, keepdims=keepdims).sqrt()

    # ---------------------------------------------------------------- shapes
    def reshape(self, *shape):
        return _ops().Reshape.apply(self, shape=_shape_args(shape))

    def is_contiguous(self) -> bool:
        """Is the data one C-ordered block?  (Not after permute/transpose/T or slicing.)"""
        return bool(self.data.flags.c_contiguous)

    def contiguous(self) -> Tensor:
        """Self if contiguous, else a contiguous copy."""
        return self if self.is_contiguous() else self.clone()

    def view(self, *shape):
        """A reshaped tensor sharing this one's memory, as in PyTorch: only for a
        contiguous tensor (else use :meth:`reshape`, which copies when it must)."""
        if not self.is_contiguous():
            raise ValueError(
                f"view: this {self.shape} tensor is not contiguous in memory (it came from "
                "permute, transpose, .T or a slice), so it has no view of another shape; "
                "use .reshape(...) (or .contiguous().view(...))"
            )
        result = self.reshape(*shape)
        result._version = self._version  # the same memory: in-place changes show in both
        return result

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        """Merge axes start_dim..end_dim (inclusive) into one."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = _ops()._normalize_axes((start_dim, end_dim), self.ndim, "flatten")
        if start_dim % self.ndim > end_dim % self.ndim:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        merged = int(np.prod(self.shape[start:end + 1]))
        return self.reshape(self.shape[:start] + (merged,) + self.shape[end + 1:])

    def unsqueeze(self, dim: int):
        """A new axis of size 1 at position ``dim`` (from -ndim-1 to ndim)."""
        (axis,) = _ops()._normalize_axes(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def squeeze(self, dim=None):
        """Drop axes of size 1: all of them, or those of ``dim`` (an int or tuple)
        that have size 1 (others are left alone, as in PyTorch)."""
        axes = _ops()._normalize_axes(dim, self.ndim, "squeeze") if self.ndim else ()
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def expand(self, *sizes):
        """Broadcast to ``sizes`` (-1 keeps an axis); new axes go in front.  Unlike
        PyTorch, the result is a copy, not a view with zero strides."""
        sizes = _shape_args(sizes)
        extra = len(sizes) - self.ndim
        if extra < 0 or any(n == -1 for n in sizes[:extra]):
            raise ValueError(f"expand: cannot expand a {self.shape} tensor to {sizes}")
        shape = tuple(sizes[:extra]) + tuple(
            old if new == -1 else new for old, new in zip(self.shape, sizes[extra:])
        )
        if any(old not in (1, new) for old, new in zip(self.shape, shape[extra:])):
            raise ValueError(
                f"expand: a {self.shape} tensor can only be stretched along axes of size 1, "
                f"not to {sizes}"
            )
        return _ops().Expand.apply(self, shape=shape)

    def permute(self, *axes):
        """Reorder the axes: output axis i is input axis ``axes[i]`` (as in PyTorch)."""
        return _ops().Permute.apply(self, axes=_shape_args(axes))

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

    # ------------------------------------------------------ copies and dtypes
    def clone(self) -> Tensor:
        """A copy with its own memory; gradients flow back to self."""
        return _ops().Clone.apply(self)

    def to(self, *args, device: str | None = None, dtype=None) -> Tensor:
        """A copy on another device and/or of another dtype, as PyTorch's ``to``:
        ``x.to("cuda")``, ``x.to(np.float64)``, ``x.to(other_tensor)``, or keywords.
        Self if nothing changes; gradients flow back through float conversions."""
        for arg in args:
            if isinstance(arg, Tensor):
                device, dtype = arg.device, arg.dtype
            elif isinstance(arg, str) and arg in DEVICES:
                device = arg
            else:
                dtype = arg
        result = self
        if device is not None and device != self.device:
            result = _ops().ToDevice.apply(result, device=device)
        if dtype is not None and np.dtype(dtype) != result.dtype:
            if np.dtype(dtype) in FLOAT_DTYPES and result.dtype in FLOAT_DTYPES:
                result = _ops().Cast.apply(result, dtype=np.dtype(dtype))
            else:  # to or from integers and bools: no gradient
                result = self._result(result.data.astype(dtype), result.device)
        return result

    def float(self) -> Tensor:
        """As float32 (what the GPU kernels run on)."""
        return self.to(dtype=np.float32)

    def double(self) -> Tensor:
        """As float64 (what gradient checks need)."""
        return self.to(dtype=np.float64)

    def tolist(self):
        return self.numpy().tolist()

    # ------------------------------------------------------------ elementwise
    def pow(self, exponent):
        return self ** exponent

    def clamp(self, min=None, max=None):  # PyTorch's names
        """Limit to [min, max]; the gradient passes where the value was inside."""
        if min is None and max is None:
            raise ValueError("clamp: give min, max or both")
        return _ops().Clip.apply(self, low=min, high=max)

    clip = clamp

    def exp(self):
        return _ops().Exp.apply(self)

    def log(self):
        return _ops().Log.apply(self)

    def sqrt(self):
        return _ops().Sqrt.apply(self)

    def abs(self):
        return _ops().Abs.apply(self)

    def relu(self):  # x.relu(), as in PyTorch: F.relu (imported here: functional imports us)
        from minidl.functional import relu

        return relu(self)


ValuesIndices = namedtuple("ValuesIndices", "values indices")
ValuesIndices.__doc__ = "What max(dim)/min(dim) return, as PyTorch: values and their indices."


def _shape_args(args) -> tuple:
    """``f(2, 3)`` and ``f((2, 3))`` alike, as PyTorch accepts both."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _reduction_args(op: str, dim, keepdim, axis, keepdims):
    """(dim, keepdim) from PyTorch's names or numpy's aliases, not both."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: give dim= or its alias axis=, not both")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return (tuple(dim) if isinstance(dim, list) else dim), bool(keepdim)


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
