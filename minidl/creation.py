"""Making tensors as PyTorch does, and the random generator behind them.

``zeros(2, 3)`` and ``zeros((2, 3))`` are the same (so are ``ones``, ``empty``,
``rand``, ``randn``); every maker takes the keywords ``dtype=``, ``device=`` and
``requires_grad=``.  The dtype is float32 unless given (``arange`` of ints gives
int64, as in PyTorch, since it mostly makes indices).

One module-level numpy Generator draws every random number minidl uses --
``rand``, ``randn``, the ``*_like`` versions and the layers' initial weights --
so ``minidl.manual_seed(s)`` makes all of them reproducible at once.  A call
may instead take ``seed=`` (its own fresh generator) or ``generator=``.
"""

from __future__ import annotations

import numbers

import numpy as np

from minidl.tensor import Tensor, _array_module

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator behind every random number minidl draws; returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def random_generator(seed=None, generator=None) -> np.random.Generator:
    """``generator`` if given, else a fresh one from ``seed``, else the shared one."""
    if seed is not None and generator is not None:
        raise TypeError("give seed= or generator=, not both")
    if generator is not None:
        return generator
    return _generator if seed is None else np.random.default_rng(seed)


def _size(op: str, size) -> tuple:
    """The shape from ``f(2, 3)`` or ``f((2, 3))``, checked."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 0 for n in size):
        raise TypeError(f"{op}: the size must be non-negative ints, got {size!r}")
    return tuple(int(n) for n in size)


def _make(array: np.ndarray, device: str, requires_grad: bool) -> Tensor:
    """Put a numpy array on ``device`` (as a cupy array for cuda)."""
    return Tensor(_array_module(device).asarray(array), device=device, requires_grad=requires_grad)


def zeros(*size, dtype=np.float32, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    return _make(np.zeros(_size("zeros", size), dtype), device, requires_grad)


def ones(*size, dtype=np.float32, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    return _make(np.ones(_size("ones", size), dtype), device, requires_grad)


def empty(*size, dtype=np.float32, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """Values not set (whatever the memory held), as in PyTorch."""
    return _make(np.empty(_size("empty", size), dtype), device, requires_grad)


def full(size, fill_value, *, dtype=np.float32, device: str = "cpu",
         requires_grad: bool = False) -> Tensor:
    return _make(np.full(_size("full", (size,)), fill_value, dtype), device, requires_grad)


def rand(*size, dtype=np.float32, device: str = "cpu", requires_grad: bool = False,
         seed=None, generator=None) -> Tensor:
    """Uniform on [0, 1)."""
    array = random_generator(seed, generator).random(_size("rand", size))
    return _make(array.astype(dtype), device, requires_grad)


def randn(*size, dtype=np.float32, device: str = "cpu", requires_grad: bool = False,
          seed=None, generator=None) -> Tensor:
    """Standard normal."""
    array = random_generator(seed, generator).standard_normal(_size("randn", size))
    return _make(array.astype(dtype), device, requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device: str = "cpu",
           requires_grad: bool = False) -> Tensor:
    """``start, start + step, ...`` below ``end`` (``arange(n)`` is 0 .. n-1); int64 when
    every argument is an int, else float32, unless ``dtype`` says otherwise."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must not be 0")
    if dtype is None:
        all_ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if all_ints else np.float32
    return _make(np.arange(start, end, step).astype(dtype), device, requires_grad)


def _like(maker, t: Tensor, dtype, device, requires_grad, **options) -> Tensor:
    return maker(t.shape, dtype=t.dtype if dtype is None else dtype,
                 device=t.device if device is None else device,
                 requires_grad=requires_grad, **options)


def zeros_like(t: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(zeros, t, dtype, device, requires_grad)


def ones_like(t: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(ones, t, dtype, device, requires_grad)


def empty_like(t: Tensor, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(empty, t, dtype, device, requires_grad)


def full_like(t: Tensor, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return full(t.shape, fill_value, dtype=t.dtype if dtype is None else dtype,
                device=t.device if device is None else device, requires_grad=requires_grad)


def rand_like(t: Tensor, *, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    return _like(rand, t, dtype, device, requires_grad, generator=generator)


def randn_like(t: Tensor, *, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    return _like(randn, t, dtype, device, requires_grad, generator=generator)
