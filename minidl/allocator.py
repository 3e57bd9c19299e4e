"""Keep freed memory for reuse: the C allocator set up for big, short-lived arrays.

Every forward and backward pass allocates the same large arrays (activations,
im2col columns, gradients) and frees them again.  By default glibc's ``malloc``
takes a block of 32 MB or more (less, until it has seen one) straight from the
operating system with ``mmap``, hands it back with ``munmap`` when it is freed,
and also gives back free memory at the top of its heap.  The next pass asks for
the same memory again, and the kernel provides fresh pages, zeroing each one
when it is first touched (a "page fault").  Measured here (2 cores, VGG16
forward + input gradient at 512 px): 62,000 page faults and 0.84 s of kernel
time in every 2.9 s pass.

Two ``mallopt`` settings stop that: serve blocks of up to 1 GB from the heap
(``M_MMAP_THRESHOLD``) and keep up to 1 GB of free heap instead of returning it
(``M_TRIM_THRESHOLD``).  Freed blocks are then reused: no page faults, 2.5 s per
pass, and a lower peak (570 MB instead of 598), since the process reuses what it
has instead of asking for more.  The price: after its biggest pass, the process
keeps that much memory until it exits.  (PyTorch's CPU performance guide gives
the same advice in another form: preload the jemalloc or tcmalloc allocator.)

A third setting keeps one heap for all threads (``M_ARENA_MAX``).  glibc gives
each thread that allocates its own heap (an "arena"), with its own kept memory;
the threads that split NumPy's loops (``backends/threads.py``) allocate their
temporaries, and a second heap raised VGG16's peak at 512 px from 530 to 576 MB.

``import minidl`` calls :func:`keep_freed_memory`; it acts only on Linux with
glibc, and ``MINIDL_KEEP_MEMORY=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import platform

# From glibc's <malloc.h>.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8

#: Largest block served from the heap, and most free heap kept, in bytes.
LIMIT_BYTES = 2**30


def keep_freed_memory() -> bool:
    """Set glibc's malloc to reuse freed memory (see the module docstring).

    Returns True if it did, False where it does not apply (not glibc, or
    ``MINIDL_KEEP_MEMORY=0``).
    """
    if os.environ.get("MINIDL_KEEP_MEMORY", "").strip() == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # mallopt returns 1 on success, 0 when glibc refuses the value.
    mapped = mallopt(M_MMAP_THRESHOLD, LIMIT_BYTES)
    trimmed = mallopt(M_TRIM_THRESHOLD, LIMIT_BYTES)
    one_heap = mallopt(M_ARENA_MAX, 1)
    return mapped == 1 and trimmed == 1 and one_heap == 1
