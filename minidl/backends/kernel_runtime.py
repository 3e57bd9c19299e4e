"""Compile-and-cache runtime for ``kernels/*.cu``: find a kernel, compile its file
once (and again after an edit), launch it.

:class:`KernelRuntime` takes a ``module_loader`` -- a function ``paths -> module``
whose ``module.get_function(name)`` returns a callable ``kernel(grid, block, args)``:
``cupy.RawModule`` on a GPU, :class:`minidl.backends.emulated.EmulatedModule` on the
CPU.  Everything here is the same for both; ``backends/cuda.py`` holds the op glue
(shapes, grids, arguments) on top of it.

Kernel arguments must have the exact C type of the kernel signature: ``np.int32``
for ``int`` (:func:`i32`), ``np.float32`` for ``float``, ``np.int64`` for
``long long``.  (cupy would pass a Python ``int`` as 64 bits, which an ``int``
parameter misreads.)
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from minidl.paths import kernels_dir

#: Threads per block of the 1-D (grid-stride loop) kernels.
THREADS_PER_BLOCK = 256
#: Most blocks launched for a 1-D kernel; the grid-stride loop covers the rest.
MAX_BLOCKS = 65535

#: Which file defines which kernel.
KERNEL_FILES = {
    "im2col": "im2col.cu",
    "col2im": "im2col.cu",
    "sgemm": "gemm.cu",
    "max_pool2d_forward": "pool.cu",
    "max_pool2d_backward": "pool.cu",
    "max_unpool2d_forward": "pool.cu",
    "max_unpool2d_backward": "pool.cu",
    "avg_pool2d_forward": "pool.cu",
    "avg_pool2d_backward": "pool.cu",
    "gram": "gram.cu",
    "winograd_weight_transform": "winograd.cu",
    "winograd_input_transform": "winograd.cu",
    "winograd_output_transform": "winograd.cu",
    "winograd_output_grad_transform": "winograd.cu",
    "winograd_weight_grad_transform": "winograd.cu",
}

_INT32_MAX = 2**31 - 1


def i32(*values) -> tuple:
    """Python ints -> np.int32 kernel arguments (C ``int``)."""
    return tuple(map(np.int32, values))


def check_fits_int32(op: str, *sizes) -> None:
    """Kernels index with C ``int``: every array must have < 2**31 elements, less a
    grid's worth of threads, so that the grid-stride loop's ``t += threads`` cannot
    overflow past its last item."""
    limit = _INT32_MAX - MAX_BLOCKS * THREADS_PER_BLOCK
    for size in sizes:
        if size > limit:
            raise ValueError(
                f"{op}: an array of {size} elements is too big for the kernels' 32-bit "
                "indices; use a smaller batch"
            )


class CompiledFile:
    """One kernel file as compiled: its module, its kernels and its ``#define``d numbers
    (looked up once each)."""

    def __init__(self, module, source: str):
        self.module, self.source = module, source
        self.functions: dict = {}
        self.defines: dict = {}

    def function(self, name: str):
        if name not in self.functions:
            self.functions[name] = self.module.get_function(name)
        return self.functions[name]

    def define(self, macro: str) -> int:
        """The number of ``#define macro <number>`` in the file (a tile size)."""
        if macro not in self.defines:
            found = re.search(
                rf"^[ \t]*#define[ \t]+{macro}[ \t]+(\d+)\b", self.source, re.MULTILINE
            )
            if found is None:
                raise RuntimeError(
                    f"a kernel file lacks '#define {macro} <number>', which the launch needs"
                )
            self.defines[macro] = int(found.group(1))
        return self.defines[macro]


# Compiled files, shared by every runtime of this process.  The key holds the
# modification times of the file and of the emulator's header, so a kernel edited
# while Python runs is recompiled at its next launch (two stat calls per launch).
_COMPILED: dict = {}


class KernelRuntime:
    """The kernels of one device: compiled on first use, launched by name."""

    def __init__(self, name: str, module_loader, *, threads_per_block=None, max_blocks=None):
        self.name = name
        self._load = module_loader
        self.threads = threads_per_block or THREADS_PER_BLOCK
        self.max_blocks = max_blocks or MAX_BLOCKS

    def compiled(self, file: str) -> CompiledFile:
        """``kernels/<file>``, compiled on first use and again after each edit."""
        folder = kernels_dir()
        path = os.path.join(folder, file)  # plain strings: this runs at every launch
        try:
            stamp = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{self.name}: kernel source {path} not found (set MINIDL_KERNELS to the "
                "folder holding the .cu files)"
            ) from None
        try:
            shim_stamp = os.stat(os.path.join(folder, "cuda_emu.h")).st_mtime_ns
        except FileNotFoundError:
            shim_stamp = 0
        key = (self.name, id(self._load), path, stamp, shim_stamp)
        compiled = _COMPILED.get(key)
        if compiled is None:
            compiled = _COMPILED[key] = CompiledFile(
                self._load([Path(path)]), Path(path).read_text()
            )
        return compiled

    def kernel(self, name: str):
        """The kernel called ``name`` (see :meth:`compiled`)."""
        return self.compiled(KERNEL_FILES[name]).function(name)

    def launch_1d(self, name: str, total: int, args: tuple) -> None:
        """Launch a grid-stride-loop kernel over ``total`` items (1-D grid and blocks)."""
        if total <= 0:
            return
        blocks = min(math.ceil(total / self.threads), self.max_blocks)
        self.kernel(name)((blocks,), (self.threads,), args)
