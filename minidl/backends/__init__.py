"""Backends: the three ways minidl computes the kernel-backed ops.

======================  ==================================================
``cpu.py``              NumPy (im2col + one BLAS GEMM, ...)
``cuda.py``             launch glue for ``kernels/*.cu``, for "cuda" and "cuda-emu"
``kernel_runtime.py``   compiles, caches and launches the kernels
``gemm.py``             the ``Matrix`` operand record and the GEMM launch
``emulated.py``         tooling: runs the kernels on CPU threads (g++)
======================  ==================================================

A *backend* works on raw arrays (numpy or cupy), never on Tensors; autograd lives
in ``minidl.functional``, which calls the methods below and wires forward and
backward together.  Every backend has the same methods, so the autograd code is
written once:

=====================  ===================================================
``name``               ``"cpu"``, ``"cuda"`` or ``"cuda-emu"``
``xp``                 the array module (``numpy`` or ``cupy``)
``conv2d``             (x, w, stride, padding, dilation) -> y
``conv2d_grad_input``  (gy, w, input_hw, stride, padding, dilation) -> gx
``conv2d_grad_weight`` (x, gy, kernel_hw, stride, padding, dilation) -> gw
``im2col``             (x, kernel, stride, padding, dilation) -> cols  (F.unfold)
``col2im``             (cols, input_hw, kernel, stride, padding, dilation) -> x  (F.fold)
``max_pool2d``         (x, kernel, stride, padding) -> (y, indices)
``max_pool2d_grad``    (gy, indices, input_hw, kernel, stride, padding) -> gx
``max_unpool2d``       (x, indices, output_hw) -> y
``max_unpool2d_grad``  (gy, indices) -> gx
``avg_pool2d``         (x, kernel, stride, padding) -> y
``avg_pool2d_grad``    (gy, input_hw, kernel, stride, padding) -> gx
``gram``               (x) -> G
``gram_grad``          (gG, x) -> gx
=====================  ===================================================

Conventions shared by all backends:

* Arrays are NCHW; ``w`` is (C_out, C_in, kh, kw).  ``stride``, ``padding``,
  ``dilation``, ``kernel``, ``input_hw``, ``output_hw`` and ``kernel_hw`` are
  already-validated pairs of Python ints ``(h, w)``.
* ``conv2d`` has no bias (functional adds it).  ``conv2d_grad_input`` is the
  adjoint of ``conv2d`` -- it *is* ``conv_transpose2d`` -- and needs
  ``input_hw`` because several input sizes give the same output size
  (that is what ``output_padding`` chooses).
* ``im2col`` returns (N, C*kh*kw, H_out*W_out): row (c, i, j), column
  oh*W_out + ow, zeros where a window reads padding.  ``col2im`` is its adjoint:
  it adds every column back onto its window (overlaps add up).
* Max-pool ``indices`` are integers (int64 on cuda, int32 on the cpu, where they
  use half the memory until the backward pass; ``F.max_pool2d`` hands out int64)
  and, as in PyTorch, index the flattened H*W plane of the (unpadded) input:
  ``idx = h * W + w``.  Ties pick the first maximum in row-major window order.
  ``max_pool2d_grad`` *adds* ``gy`` at the switches (overlapping windows may
  share one); it also gets the window geometry, which a gather-form kernel needs
  to find the few windows covering a pixel (the cpu backend scatters and ignores
  it).  ``max_unpool2d`` *writes* into a zero array; ``max_unpool2d_grad`` gathers.
* ``avg_pool2d`` counts padded zeros in the divisor (PyTorch's default
  ``count_include_pad=True``); padding is implicit zeros.
* ``gram(x)`` returns G[n] = F Fᵀ / (C·H·W) with F = x[n].reshape(C, H·W);
  ``gram_grad(gG, x)`` returns (gG + gGᵀ) F / (C·H·W) reshaped like x.
* Outputs have the dtype of the inputs.  cpu accepts float32 and float64;
  cuda and cuda-emu run float32 kernels only.
"""

from __future__ import annotations

import contextlib
import functools
import os

DEVICES = ("cpu", "cuda", "cuda-emu")


@contextlib.contextmanager
def setting(name: str, value: str | None):
    """Run a with-block with the environment variable ``name`` set to ``value`` (None:
    unset), then put back what was there.  The backends read their settings
    (``MINIDL_CONV``, ``MINIDL_GEMM``) at every call, so this switches them for the block."""
    before = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@functools.cache
def get_backend(device: str):
    """Return the backend object for ``device`` (created once, then cached)."""
    if device == "cpu":
        from minidl.backends.cpu import CpuBackend

        return CpuBackend()
    if device == "cuda":
        from minidl.backends.cuda import make_cuda_backend

        return make_cuda_backend()
    if device == "cuda-emu":
        from minidl.backends.cuda import make_emulated_backend

        return make_emulated_backend()
    raise ValueError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
