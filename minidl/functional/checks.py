"""Argument checks shared by the functional ops, and the backend they run on.

Every error names the op, the argument and the shapes involved, so a student can
find the offending call from the message alone.
"""

from __future__ import annotations

import numpy as np

from minidl.backends import get_backend
from minidl.tensor import Tensor


def check_tensor(op: str, name: str, t) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")


def check_4d(op: str, name: str, t) -> None:
    check_tensor(op, name, t)
    if t.ndim != 4:
        raise ValueError(f"{op}: {name} must be 4-D (N, C, H, W), got shape {t.shape}")


def check_same_dtype(op: str, **tensors) -> None:
    dtypes = {name: t.dtype for name, t in tensors.items() if t is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{n} {tensors[n].shape} {d}" for n, d in dtypes.items())
        raise TypeError(f"{op}: mixed dtypes: {listed}")


def check_same_device(op: str, **tensors) -> str:
    """The tensors' common device; an error naming each one if they differ."""
    tensors = {name: t for name, t in tensors.items() if t is not None}
    if len({t.device for t in tensors.values()}) > 1:
        listed = ", ".join(f"{name} {t.shape} on {t.device!r}" for name, t in tensors.items())
        raise ValueError(f"{op}: inputs are on different devices: {listed}; use .to(device)")
    return next(iter(tensors.values())).device


def kernel_backend(op: str, **tensors):
    """The backend that computes the kernel-backed ``op`` for tensors on one device.

    The cuda and cuda-emu kernels are written for float32; a float64 tensor there
    is refused here, where the message can name the argument the user passed.
    """
    backend = get_backend(check_same_device(op, **tensors))
    if backend.name != "cpu":
        for name, t in tensors.items():
            if t is not None and t.dtype.kind == "f" and t.dtype != np.float32:
                raise TypeError(
                    f"{op}: the {backend.name} kernels compute in float32 only, but {name} "
                    f"{t.shape} is {t.dtype}; convert it with {name}.float(), or compute "
                    "in float64 on device 'cpu'"
                )
    return backend


def reduce(op: str, elementwise: Tensor, reduction: str) -> Tensor:
    """A loss's ``reduction``: 'mean' (default), 'sum', or 'none' (the elementwise tensor)."""
    if reduction == "mean":
        return elementwise.mean()
    if reduction == "sum":
        return elementwise.sum()
    if reduction == "none":
        return elementwise
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
