"""NumPy's copies, elementwise loops and matrix products on every core, split between threads.

A NumPy copy, sum or comparison runs on one core: between two GEMMs of a
convolution the other cores would wait.  NumPy lets go of Python's global lock
(the GIL) while such a loop runs, so plain Python threads can run them side by
side: cut the arrays along one axis into one part per core and give each part to
a thread.  Matrix products are cut the same way (:func:`matmul`), each part a
one-thread BLAS call, rather than left to BLAS's own threads.

Measured (2 cores, float32, ms, one thread vs two): the gather of Winograd's input
tiles for 64 channels at 256 px (whole image) 10.3 vs 3.6, the placing of its
output tiles into the image 1.7 vs 1.1; for 256 channels at 64 px 2.5 vs 1.4 and
0.49 vs 0.31.

Arrays under ``MIN_BYTES`` stay in one thread (handing a part to a thread costs
tens of microseconds).  ``MINIDL_THREADS=1`` turns the splitting off; by default
there is one part per core this process may use.  Only NumPy arrays are split:
for CuPy arrays the functions below do the plain operation.
"""

from __future__ import annotations

import os
import threading

import numpy as np

#: Arrays smaller than this (bytes) are not split.
MIN_BYTES = 2**20

#: Copies and sums are done a block of about this many bytes at a time (see _by_parts).
BLOCK_BYTES = 2**19

#: Matrix products with fewer multiply-adds than this are left to BLAS whole.
MIN_PRODUCT = 2**22


def _thread_count() -> int:
    value = os.environ.get("MINIDL_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"MINIDL_THREADS must be a whole number >= 1, got {value!r}")
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


#: How many parts a big loop is cut into (this thread runs one, helper threads the rest).
THREADS = _thread_count()


class _Helper:
    """A thread that runs one part at a time: ``start`` hands it a part, ``join``
    waits until the part is done.

    Two locks are the whole hand-off: the helper waits on ``_go``, which ``start``
    releases, and releases ``_done``, on which ``join`` waits.  A
    ``concurrent.futures`` pool does the same with a queue, a Future and a
    Condition per part, in more Python.  Split in two, a 1 MB copy took 74 us
    through such a pool and takes 49 us so (51 us unsplit); a Gatys loss
    evaluation at 256 px has about 320 split loops.
    """

    def __init__(self, name: str):
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._part = self._error = None
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._go.acquire()
            work, start, stop = self._part
            self._part = None
            try:
                work(start, stop)
            except BaseException as error:  # noqa: BLE001 -- join() hands it to the caller
                self._error = error
            del work  # (its closure holds the caller's arrays: let them go now)
            self._done.release()

    def start(self, work, start: int, stop: int) -> None:
        self._part = (work, start, stop)
        self._go.release()

    def join(self):
        """Wait until the part is done: its error, or None."""
        self._done.acquire()
        error, self._error = self._error, None
        return error


#: The helper threads, made on first use (each a :class:`_Helper`).
_helpers: list[_Helper] = []

#: Held by the thread whose loop is split between the threads.  A part that splits
#: again, or another of the program's threads calling in meanwhile, finds it
#: taken and runs its loop whole, in its own thread: the helpers are busy.
_splitting = threading.Lock()


def _start_afresh() -> None:
    """In a child made by ``os.fork``: the helper threads were not copied, and the
    lock may have been held by a thread that is gone, so start anew."""
    global _helpers, _splitting
    _helpers, _splitting = [], threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_start_afresh)


def for_each_part(work, length: int, nbytes: int) -> None:
    """Call ``work(start, stop)`` for consecutive parts of ``range(length)``, one per
    thread, at the same time; all of it in this thread when ``nbytes`` (the size of
    the arrays involved) is under ``MIN_BYTES``, or when the threads are busy with
    another split loop already (this one's own parts, for one).  So a part may call
    the functions below: they run in it.

    The parts are equal, and where they begin depends on ``length`` alone, so a
    run gives the same numbers every time (lesson 12 checks it bit for bit): a
    matrix product cut elsewhere may round differently (cut at random columns or
    rows, float32 and float64 products changed bits in 149 of 480 tries here), and
    so does :func:`gram`'s sum of partial products.  Cutting the other loops
    (copies, elementwise loops, whole products of a batch) in proportion to each
    thread's measured speed was tried, as the cores of this virtual machine were
    at times up to 40% unequal: in one process, taking turns, it was no faster
    (the Gatys loss at 256 px 1.02 of the time, VGG16 at 224 px 1.01).
    """
    count = min(THREADS, length) if nbytes >= MIN_BYTES else 1
    if count <= 1 or not _splitting.acquire(blocking=False):
        work(0, length)
        return
    try:
        while len(_helpers) < count - 1:
            _helpers.append(_Helper(f"minidl-helper_{len(_helpers)}"))
        bounds = [length * k // count for k in range(count + 1)]
        helpers = _helpers[: count - 1]
        for helper, start, stop in zip(helpers, bounds[1:], bounds[2:]):
            helper.start(work, start, stop)
        try:
            work(bounds[0], bounds[1])  # this thread's own part
        finally:
            # Wait for every part, even after an error here: none may still be
            # writing when the caller goes on.
            errors = _wait_for(helpers)
        for error in errors:  # a part's error, raised here in the caller's thread
            if error is not None:
                raise error
    finally:
        _splitting.release()


def _wait_for(helpers) -> list:
    """Each helper's part's error (or None), once all of them are done.  Interrupted
    while waiting (Ctrl-C), a helper may still be busy: the next loop gets new ones."""
    try:
        return [helper.join() for helper in helpers]
    except BaseException:
        _helpers.clear()
        raise


def _by_parts(dest, src, axis: int, combine) -> None:
    """``combine(dest_part, src_part)`` for one part of ``axis`` per thread, each part
    in blocks of ``axis`` of about ``BLOCK_BYTES`` of ``dest``.

    Why blocks: a copy that reorders axes (Winograd's input tiles, gathered from
    a strided view of the image) reads its source again for every index of the
    destination's leading axes.  Done whole, it sweeps the whole source each time,
    from memory; a block at a time, the block's share of the source stays in the
    core's cache.  Measured (one core, the input tiles of 64 channels at 256 px):
    14.6 ms whole, 8.0 ms a channel at a time.
    """
    block = max(1, BLOCK_BYTES * dest.shape[axis] // max(1, dest.nbytes))

    def work(start, stop):
        for first in range(start, stop, block):
            part = (slice(None),) * axis + (slice(first, min(first + block, stop)),)
            combine(dest[part], src[part])

    for_each_part(work, dest.shape[axis], dest.nbytes)


def copy(dest, src, axis: int = 0) -> None:
    """``dest[...] = src`` (same shapes), one part of ``axis`` per thread."""
    if not isinstance(dest, np.ndarray):
        dest[...] = src
        return
    _by_parts(dest, src, axis, lambda d, s: np.copyto(d, s, casting="unsafe"))  # (as "=" casts)


def contiguous(array, axis: int = 0):
    """A C-contiguous copy of ``array`` (itself when it is one already), made by threads."""
    if not isinstance(array, np.ndarray) or array.flags.c_contiguous:
        return array
    out = np.empty(array.shape, dtype=array.dtype)
    copy(out, array, axis)
    return out


def add(dest, src, axis: int = 0) -> None:
    """``dest += src``, one part of ``axis`` per thread (``src`` has dest's shape, or
    broadcasts to it with the whole of ``axis``, as a bias of one value per channel)."""
    if not isinstance(dest, np.ndarray):
        dest += src
        return
    _by_parts(dest, src, axis, lambda d, s: np.add(d, s, out=d))


def elementwise(function, *arrays):
    """``function(*arrays)`` for an elementwise ``function`` of same-shape arrays,
    computed a part of the flattened arrays per thread (when all are C-contiguous
    NumPy arrays; otherwise in one call).

    ``function`` takes an ``out=`` keyword as NumPy's ufuncs do, and writes each
    part's result straight into its slice of the result: ``lambda v, out=None:
    np.maximum(v, 0, out=out)``.  (Returning each part and copying it in is a second
    pass: ReLU over VGG16's activations at 256 px took 9.4 ms that way, 6.3 ms so.)
    """
    first = arrays[0]
    same = all(isinstance(a, np.ndarray) and a.shape == first.shape and a.flags.c_contiguous for a in arrays)
    if not same or first.nbytes < MIN_BYTES:
        return function(*arrays)
    flat = [a.reshape(-1) for a in arrays]
    dtype = function(*(a[:1] for a in flat)).dtype  # (of one element: the result's dtype)
    out = np.empty(first.size, dtype=dtype)

    def work(start, stop):
        function(*(a[start:stop] for a in flat), out=out[start:stop])

    for_each_part(work, first.size, first.nbytes)
    return out.reshape(first.shape)


def matmul(a, b, out=None):
    """``a @ b`` (into ``out`` when given) for a product of matrices or a batch of
    them, cut into one part per thread, each part a one-thread BLAS call.

    BLAS can split a product between the cores itself, but its threads meet at
    every step of the product (each packs a share of the operands for both), and
    one that arrives first spins until the other does.  Cut here into whole
    independent products instead -- a share of the batch, or of the columns of the
    result (of its rows, when those are more) -- the threads meet once, at the end.
    Measured (2 cores, one process, taking turns, two runs of 5-12 turns each): the
    Gatys loss at 256 px 15-16% faster, VGG16's input gradient 10-15% at 224 px and
    17-19% at 512.
    Each output is a sum over the same terms in the same blocks, so it agrees with
    the unsplit product to rounding, and for those float32 passes to the bit (BLAS
    may pick another kernel for a narrower part: float64 differed by 1 ulp here).

    Small products (under ``MIN_PRODUCT`` multiply-adds), other shapes than 2-D
    or 3-D, and CuPy arrays go to ``@`` whole.
    """
    numpy_arrays = isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    if not numpy_arrays or THREADS == 1 or not _splittable(a, b):
        return a @ b if out is None else np.matmul(a, b, out=out)
    if out is None:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        out = np.empty((*batch, a.shape[-2], b.shape[-1]), dtype=np.result_type(a, b))
    if out.ndim == 3 and out.shape[0] < THREADS:  # too few to share: split each one
        for k in range(out.shape[0]):
            matmul(a[k] if a.ndim == 3 else a, b[k] if b.ndim == 3 else b, out[k])
        return out
    if out.ndim == 3:
        def work(start, stop):  # whole products of the batch
            np.matmul(a[start:stop] if a.ndim == 3 else a, b[start:stop] if b.ndim == 3 else b,
                      out=out[start:stop])  # fmt: skip
        length = out.shape[0]
    elif out.shape[1] >= out.shape[0]:
        def work(start, stop):  # columns of the result: each thread reads all of a
            np.matmul(a, b[:, start:stop], out=out[:, start:stop])
        length = out.shape[1]
    else:
        def work(start, stop):  # rows of the result: each thread reads all of b
            np.matmul(a[start:stop], b, out=out[start:stop])
        length = out.shape[0]
    _blas_on_one_thread()
    for_each_part(work, length, nbytes=MIN_BYTES)  # (MIN_PRODUCT decided it: split)
    return out


def gram(f):
    """``f @ fᵀ`` for each (C, P) matrix of a batch ``f`` (N, C, P), a share of the
    P columns per thread.

    A share of f's columns times its own transpose is still a matrix times its
    transpose, which BLAS computes as one (SYRK: it knows the result is
    symmetric, and does half the multiplications); each thread reads only its
    share of f, and the partial products are added up.  :func:`matmul` would cut
    the result into columns instead: each thread would read all of f, and lose
    SYRK.  Measured (2 cores, ms, the Gram matrices of the Gatys loss at 256 px,
    five style layers, two runs): 13.0 and 14.3 by columns of the result, 9.6 and
    11.2 so.
    """
    n, c, p = f.shape
    if not isinstance(f, np.ndarray) or THREADS == 1 or n * c * c * p < MIN_PRODUCT:
        return f @ f.transpose(0, 2, 1)
    _blas_on_one_thread()
    out = np.empty((n, c, c), dtype=f.dtype)
    for k in range(n):
        _gram_by_shares(f[k], out[k])
    return out


def _gram_by_shares(f, out) -> None:
    """``out[...] = f @ fᵀ`` for one (C, P) matrix f, a share of its columns per thread."""
    partial = {}

    def work(start, stop):  # columns start..stop
        share = f[:, start:stop]
        partial[start] = share @ share.T

    for_each_part(work, f.shape[1], nbytes=MIN_BYTES)
    first, *rest = (partial[start] for start in sorted(partial))  # the same order every time
    np.copyto(out, first)
    for product in rest:
        out += product


def _splittable(a, b) -> bool:
    """2-D or 3-D operands (a 3-D batch against a matrix, or two equal batches), and
    a product big enough to be worth the threads."""
    if not (2 <= a.ndim <= 3 and 2 <= b.ndim <= 3):
        return False
    if a.ndim == b.ndim == 3 and a.shape[0] != b.shape[0]:
        return False
    batch = max(a.shape[0] if a.ndim == 3 else 1, b.shape[0] if b.ndim == 3 else 1)
    return batch * a.shape[-2] * a.shape[-1] * b.shape[-1] >= MIN_PRODUCT


#: Whether BLAS has been told to run each call on its calling thread.
_blas_single = False


def _blas_on_one_thread() -> None:
    """From the first split product on, BLAS runs every call on the thread that makes
    it, for the rest of the process (NumPy's matrix products outside minidl too).

    For good, not just around each product: setting BLAS's thread count back and
    forth costs more than splitting gains (the Gatys loss at 256 px ran 26% slower
    that way).  threadpoolctl finds the BLAS NumPy loaded (OpenBLAS, MKL, BLIS)
    and calls its own set-threads function.  ``MINIDL_THREADS=1`` turns splitting
    off, and leaves BLAS its threads.
    """
    global _blas_single
    if not _blas_single:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        _blas_single = True
