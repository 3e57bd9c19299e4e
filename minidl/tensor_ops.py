"""The Functions behind Tensor's operators: arithmetic, reductions, shapes, indexing.

Each class computes its forward pass with the device's array module (numpy or
cupy, taken from the input array itself) and returns the gradient of each input
in ``backward``.  Broadcasting is handled once, in :func:`unbroadcast`: an input
that was stretched to a larger shape in the forward pass receives the *sum* of
the gradient over the stretched axes.

Layering: this module imports :mod:`minidl.autograd` and :mod:`minidl.tensor`
(and ``backends.threads`` for matrix products); neither of them imports it at
load time (Tensor's operators look it up when first called).
"""

from __future__ import annotations

import numpy as np

from minidl.autograd import Function, check_same_device
from minidl.backends import threads
from minidl.tensor import Tensor


def array_module(array):
    """numpy for numpy arrays, cupy for cupy arrays."""
    if isinstance(array, (np.ndarray, np.generic)):
        return np
    import cupy

    return cupy.get_array_module(array)


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the backward pass of broadcasting."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def as_tensor_like(value, reference: Tensor) -> Tensor:
    """Wrap a Python/numpy scalar or array as a constant on ``reference``'s device."""
    if isinstance(value, Tensor):
        return value
    if reference.dtype.kind in "iub" and np.asarray(value).dtype.kind == "f":
        raise TypeError(
            f"a float value {value!r} cannot be combined with an integer tensor "
            f"{reference.shape} {reference.dtype}; make it a float tensor first (x.float())"
        )
    array = reference.xp.asarray(value, dtype=reference.dtype)
    return Tensor(array, device=reference.device)


def _operands(op: str, a, b) -> tuple[Tensor, Tensor]:
    """Wrap plain numbers as constants; check that dtypes and devices agree."""
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    if not isinstance(b, Tensor):
        b = as_tensor_like(b, a)
    if a.dtype != b.dtype:
        raise TypeError(
            f"{op}: mixed dtypes {a.dtype} {a.shape} and {b.dtype} {b.shape}; "
            "convert one of them first"
        )
    check_same_device(op, (a, b))
    return a, b


def _binary_operands(op: str, a, b) -> tuple[Tensor, Tensor]:
    """Operands of an elementwise op: as :func:`_operands`, and shapes that broadcast."""
    a, b = _operands(op, a, b)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together")
    return a, b


# ------------------------------------------------------------ arithmetic
class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return unbroadcast(g * self.b, self.a.shape), unbroadcast(g * self.a, self.b.shape)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        grad_a = g / self.b
        grad_b = -g * self.a / (self.b * self.b)
        return unbroadcast(grad_a, self.a.shape), unbroadcast(grad_b, self.b.shape)


class Pow(Function):
    """a ** b for tensors.

    d/da = b·a^(b-1), taken as 0 where b = 0 (a**0 is the constant 1, even at a = 0);
    d/db = a^b·log a, taken as 0 where a <= 0 (where log a does not exist).
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g):
        xp = array_module(g)
        need_a, need_b = self.needs_input_grad
        grad_a = grad_b = None
        if need_a:
            with np.errstate(divide="ignore", invalid="ignore"):  # 0**-1 where b = 0, masked
                grad_a = xp.where(self.b == 0, 0, g * self.b * self.a ** (self.b - 1))
            grad_a = unbroadcast(grad_a, self.a.shape)
        if need_b:
            safe_log = xp.log(xp.where(self.a > 0, self.a, 1))
            grad_b = unbroadcast(g * self.out * safe_log, self.b.shape)
        return grad_a, grad_b


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


def add(a, b):
    return Add.apply(*_binary_operands("add", a, b))


def sub(a, b):
    return Sub.apply(*_binary_operands("sub", a, b))


def mul(a, b):
    return Mul.apply(*_binary_operands("mul", a, b))


def div(a, b):
    return Div.apply(*_binary_operands("div", a, b))


def power(a, b):
    return Pow.apply(*_binary_operands("pow", a, b))


class MatMul(Function):
    """Matrix product with numpy's rules: batched, broadcast, 1-D operands promoted.

    (``threads.matmul`` is ``@``, with big products on the cpu split between cores.)
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return threads.matmul(a, b)

    def backward(self, g):
        xp = array_module(g)
        a, b = self.a, self.b
        # Promote 1-D operands to matrices so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        # The output lost the axes that were promoted; put them back (b's first,
        # so that a 1-D @ 1-D scalar becomes a 1x1 matrix).
        g2 = g
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        grad_a = threads.matmul(g2, xp.swapaxes(b2, -1, -2))
        grad_b = threads.matmul(xp.swapaxes(a2, -1, -2), g2)
        grad_a = unbroadcast(grad_a, a2.shape).reshape(a.shape)
        grad_b = unbroadcast(grad_b, b2.shape).reshape(b.shape)
        return grad_a, grad_b


def matmul(a, b):
    a, b = _operands("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got {a.shape} @ {b.shape}")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(f"matmul: inner sizes differ: {a.shape} @ {b.shape}")
    return MatMul.apply(a, b)


# ------------------------------------------------------------ elementwise math
class Exp(Function):
    def forward(self, a):
        self.out = array_module(a).exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return array_module(a).log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = array_module(a).sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return array_module(a).abs(a)

    def backward(self, g):
        return g * array_module(g).sign(self.a)


class Clip(Function):
    """Clamp to [low, high]; the gradient passes only where the value was inside."""

    def forward(self, a, low=None, high=None):
        xp = array_module(a)
        self.inside = xp.ones(a.shape, dtype=bool)
        if low is not None:
            self.inside &= a >= low
        if high is not None:
            self.inside &= a <= high
        return xp.clip(a, low, high).astype(a.dtype, copy=False)

    def backward(self, g):
        return g * self.inside


# ------------------------------------------------------------ reductions
def _normalize_axes(axis, ndim: int, op: str):
    """The axes as a sorted tuple of non-negative ints; a clear error if out of range."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"{op}: axis {ax} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(int(ax) % ndim for ax in axes))


def _expand_reduced(g, axes, keepdims):
    """Give a reduced gradient back its reduced axes (as size 1) so it broadcasts
    over the input's shape."""
    xp = array_module(g)
    if not keepdims:
        for ax in axes:
            g = xp.expand_dims(g, ax)
    return g


class Sum(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape = a.shape
        self.axes = _normalize_axes(axis, a.ndim, "sum")
        self.keepdims = keepdims
        return a.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = _expand_reduced(g, self.axes, self.keepdims)
        return array_module(g).broadcast_to(g, self.shape).copy()


class Mean(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape = a.shape
        self.axes = _normalize_axes(axis, a.ndim, "mean")
        self.keepdims = keepdims
        self.count = int(np.prod([a.shape[ax] for ax in self.axes]))
        return a.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = _expand_reduced(g, self.axes, self.keepdims) / self.count
        return array_module(g).broadcast_to(g, self.shape).copy()


class _Extreme(Function):
    """Maximum or minimum; when several elements tie, the gradient is shared equally."""

    def forward(self, a, axis=None, keepdims=False):
        self.a = a
        self.axes = _normalize_axes(axis, a.ndim, self.name)
        self.keepdims = keepdims
        self.out = getattr(a, self.name)(axis=self.axes, keepdims=True)
        return self.out if keepdims else self.out.reshape(
            [n for i, n in enumerate(a.shape) if i not in self.axes]
        )

    def backward(self, g):
        g = _expand_reduced(g, self.axes, self.keepdims)
        winners = (self.a == self.out).astype(g.dtype)
        return g * winners / winners.sum(axis=self.axes, keepdims=True)


class Max(_Extreme):
    name = "max"


class Min(_Extreme):
    name = "min"


def arg_extreme(a: Tensor, name: str, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the max (``name="argmax"``) or min along ``dim``, or in the flattened
    tensor when ``dim`` is None; an int64 tensor with no gradient."""
    data = a.data
    if dim is None:
        index = getattr(data.reshape(-1), name)()
        index = index.reshape((1,) * a.ndim) if keepdim else index
    else:
        (axis,) = _normalize_axes(dim, a.ndim, name)
        index = getattr(data, name)(axis=axis, keepdims=keepdim)
    return Tensor(a.xp.asarray(index, dtype=np.int64), device=a.device)


# ------------------------------------------------------------ shapes
class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape {a.shape} ({a.size} elements) to {shape}")

    def backward(self, g):
        return g.reshape(self.shape)


class Expand(Function):
    """Broadcast to a larger shape (a copy, not a strided view); backward sums the
    gradient over the stretched axes."""

    def forward(self, a, shape):
        self.shape = a.shape
        return array_module(a).broadcast_to(a, shape).copy()

    def backward(self, g):
        return unbroadcast(g, self.shape)


class Clone(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return g


class Cast(Function):
    """Convert between float dtypes; the gradient is converted back."""

    def forward(self, a, dtype):
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)


class Permute(Function):
    """Reorder axes; the backward pass applies the inverse permutation."""

    def forward(self, a, axes):
        axes = tuple(axes)
        if len(axes) != a.ndim or sorted(ax % max(a.ndim, 1) for ax in axes) != list(range(a.ndim)):
            raise ValueError(f"permute: axes {axes} are not a permutation of a {a.ndim}-D shape")
        self.inverse = tuple(np.argsort([ax % a.ndim for ax in axes]))
        return a.transpose(axes)

    def backward(self, g):
        return g.transpose(self.inverse)


def _raw_index(index):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, tuple):
        return tuple(_raw_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    return index


class GetItem(Function):
    """Basic and integer-array indexing; backward scatters with *addition*, so an
    element picked twice gets both gradients."""

    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        xp = array_module(g)
        grad = xp.zeros(self.shape, dtype=self.dtype)
        if _has_arrays(self.index):
            xp.add.at(grad, self.index, g)  # unlike grad[index] += g, repeats add up
        else:
            grad[self.index] += g  # slices and ints never pick an element twice: faster
        return grad


def _has_arrays(index) -> bool:
    """Does an index contain arrays or lists (integer-array indexing)?"""
    parts = index if isinstance(index, tuple) else (index,)
    return any(not isinstance(p, (int, np.integer, slice, type(None), type(Ellipsis))) for p in parts)


def getitem(a: Tensor, index):
    try:
        return GetItem.apply(a, index=_raw_index(index))
    except IndexError as error:
        raise IndexError(f"getitem: index {index!r} on a tensor of shape {a.shape}: {error}")


class Concat(Function):
    def forward(self, *arrays, axis=0):
        xp = array_module(arrays[0])
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return xp.concatenate(arrays, axis=axis)

    def backward(self, g):
        xp = array_module(g)
        cuts = np.cumsum(self.sizes)[:-1].tolist()
        return tuple(xp.split(g, cuts, axis=self.axis))


def _check_joinable(op: str, tensors):
    if not tensors:
        raise ValueError(f"{op}: needs at least one tensor")
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        listed = ", ".join(f"{t.shape} {t.dtype}" for t in tensors)
        raise TypeError(f"{op}: mixed dtypes: {listed}")
    check_same_device(op, tensors)


def _dim_or_axis(op: str, dim, axis, default=0):
    """PyTorch's ``dim=`` with numpy's ``axis=`` accepted as an alias."""
    if dim is not None and axis is not None:
        raise TypeError(f"{op}: give dim= or its alias axis=, not both")
    return default if dim is None and axis is None else (dim if axis is None else axis)


def concat(tensors, dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """Join tensors along an existing axis (``minidl.cat`` is the same function)."""
    axis = _dim_or_axis("concat", dim, axis)
    tensors = list(tensors)
    _check_joinable("concat", tensors)
    shapes = [t.shape for t in tensors]
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ValueError("concat: cannot join 0-d tensors along an axis; use stack")
    (axis,) = _normalize_axes(axis, ndim, "concat")
    for s in shapes:
        if len(s) != ndim or any(s[i] != shapes[0][i] for i in range(ndim) if i != axis):
            raise ValueError(f"concat: shapes {shapes} differ outside axis {axis}")
    return Concat.apply(*tensors, axis=axis)


cat = concat


def stack(tensors, dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """Join tensors along a new axis (each gets a size-1 axis, then concat)."""
    axis = _dim_or_axis("stack", dim, axis)
    tensors = list(tensors)
    _check_joinable("stack", tensors)
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all shapes must be equal, got {sorted(shapes)}")
    shape = tensors[0].shape
    (axis,) = _normalize_axes(axis, len(shape) + 1, "stack")
    new_shape = shape[:axis] + (1,) + shape[axis:]
    return concat([t.reshape(new_shape) for t in tensors], dim=axis)


class ToDevice(Function):
    """Move data between devices; the gradient moves back."""

    def forward(self, a, device):
        from minidl.backends import get_backend

        self.source = "cuda" if not isinstance(a, np.ndarray) else "cpu"
        xp = get_backend(device).xp
        if xp is np:  # cpu and cuda-emu both hold numpy arrays: copy, never share
            return a.copy() if isinstance(a, np.ndarray) else a.get()
        return xp.asarray(a)

    def backward(self, g):
        if self.source == "cpu":
            return g if isinstance(g, np.ndarray) else g.get()
        import cupy

        return cupy.asarray(g)

    @classmethod
    def apply(cls, a, device):
        # The output lives on another device than the input, so apply() is spelled out.
        from minidl.autograd import is_grad_enabled

        function = cls()
        function.needs_input_grad = (is_grad_enabled() and a.requires_grad,)
        out = Tensor(function.forward(a.data, device), device=device)
        function.attach(out, (a,))
        return out
