"""How fast is the NumPy backend, compared with this machine's own SGEMM?  (``minidl bench``)

Almost all the arithmetic of a VGG16 is in its convolutions, and the cpu backend
turns each convolution into im2col (copies) + one GEMM (BLAS).  So the honest yard
stick is the SGEMM throughput of the same BLAS on the same machine: the benchmark
runs minidl's own VGG16 (Tensors, autograd and all) and reports what fraction of
SGEMM's GFLOP/s the whole network reaches (copies, ReLU, pooling and the autograd
bookkeeping included).

Each (size, pass) runs in a fresh child process, so that its peak resident memory
(``ru_maxrss``, the high-water mark of the process) belongs to that row alone.
The child measures SGEMM itself, before each repeat of the pass: on a laptop or a
shared machine the speed drifts, and the ratio is only fair if both numbers see
the same conditions.

The command itself is ``minidl/commands/bench.py``; ``minidl bench --kernels``
benchmarks the hand-written CUDA kernels instead (see ``minidl.kernel_bench``), and
``minidl bench --compare-torch`` times minidl against PyTorch (``minidl.bench_torch``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor

import numpy as np

# The SGEMM used as the yard stick: (M, K) @ (K, N) in float32.  Its shape is that
# of a block4/block5 conv GEMM: C_out x C_in*9 x a chunk of 1024 output pixels.
SGEMM_SHAPE = (512, 4608, 1024)


def measure_sgemm(repeats: int = 3) -> float:
    """Best-of-``repeats`` float32 matmul throughput in GFLOP/s (arrays freed on return),
    multiplied as minidl's convolutions multiply: ``threads.matmul``, one part per core."""
    from minidl.backends import threads

    m, k, n = SGEMM_SHAPE
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    threads.matmul(a, b)  # warm-up: starts the threads
    best = min(_timed(lambda: threads.matmul(a, b)) for _ in range(repeats))
    return 2 * m * k * n / best / 1e9


def bench_vgg16(size: int, backward: bool) -> dict:
    """Time minidl's VGG16 (random weights, frozen) forward, or forward+backward
    w.r.t. the input, at ``size`` px: the framework itself, autograd included.

    Runs the pass a few times, each time after measuring SGEMM, and keeps the
    fastest; returns seconds, GFLOP, seconds per kind of op, SGEMM GFLOP/s and
    the process's peak RSS.
    """
    from minidl.autograd import no_grad
    from minidl.models import vgg16
    from minidl.tensor import tensor

    sgemm = measure_sgemm()  # also starts the threads before the baseline
    baseline = peak_rss_mb()
    model = vgg16(weights=None)
    gflop = _conv_gflop(model, size) * (2 if backward else 1)  # + one conv2d_grad_input per conv
    image = np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)

    best, best_parts = float("inf"), {}
    with _timing_backend_ops() as parts:
        for _ in range(3 if size <= 256 else 2):
            sgemm = max(sgemm, measure_sgemm())
            parts.update(dict.fromkeys(parts, 0.0))
            x = tensor(image, requires_grad=backward)
            start = time.perf_counter()
            if backward:
                model(x).sum().backward()
                out = x.grad
            else:
                with no_grad():
                    out = model(x).data
            seconds = time.perf_counter() - start
            assert out.dtype == np.float32, f"the pass ran in {out.dtype}, not float32"
            if seconds < best:
                best = seconds
                best_parts = {**parts, "other": seconds - sum(parts.values())}
    return {
        "pass": "forward+backward" if backward else "forward",
        "seconds": best,
        "gflop": gflop,
        "parts": best_parts,
        "sgemm": sgemm,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline,
    }


def _conv_gflop(model, size: int) -> float:
    """GFLOP of the model's convolution GEMMs at ``size`` px: 2·C_out·(C_in·kh·kw)·H·W each."""
    from minidl.models.vgg16 import LAYER_NAMES

    gflop, hw = 0.0, size
    for name in LAYER_NAMES:
        if name.endswith("pool"):
            hw //= 2
        else:
            c_out, c_in, kh, kw = getattr(model, name).weight.shape
            gflop += 2 * c_out * (c_in * kh * kw) * hw * hw / 1e9
    return gflop


@contextlib.contextmanager
def _timing_backend_ops():
    """While active, the cpu backend adds the time of each call into the yielded dict.

    "conv" collects conv2d and its input gradient, "pool" max-pooling and its
    gradient; the rest of a pass (ReLU, bias, autograd) is "other".
    """
    groups = {"conv2d": "conv", "conv2d_grad_input": "conv",
              "max_pool2d": "pool", "max_pool2d_grad": "pool"}  # fmt: skip
    with timing_backend_ops(lambda name, args: groups[name], names=groups) as (parts, _):
        parts.update(conv=0.0, pool=0.0)
        yield parts


@contextlib.contextmanager
def timing_backend_ops(label, names=None):
    """While active, each call of a cpu backend method (those in ``names``, or all)
    adds its wall time in seconds, and one call, under the key ``label(name, args)``
    into the two yielded dicts (seconds, calls).

    Only outermost calls count: conv2d_grad_input may call conv2d, and that inner
    call is part of the outer one's time.  ``label`` is asked after the call, so it
    may look at what the call did (``tools/profile_cpu.py`` names the convolution
    algorithm that ran).  The methods are timed where Python calls them: wall time,
    the helper threads' share of it included.
    """
    from minidl.backends import get_backend

    backend = get_backend("cpu")
    if names is None:  # every public method of the backend
        names = [
            name
            for name, value in vars(type(backend)).items()
            if callable(value) and name[0] != "_"
        ]
    seconds, calls = defaultdict(float), defaultdict(int)
    depth = [0]  # how many timed calls are running now, one inside the other

    def timed(name, method):
        def call(*args):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return method(*args)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    key = label(name, args)
                    seconds[key] += time.perf_counter() - start
                    calls[key] += 1

        return call

    for name in names:  # instance attributes shadow the methods...
        setattr(backend, name, timed(name, getattr(backend, name)))
    try:
        yield seconds, calls
    finally:
        for name in names:  # ...until they are deleted again
            delattr(backend, name)


def in_fresh_process(func, *args):
    """Run ``func(*args)`` in a new Python process ("spawn") and return its result."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def peak_rss_mb():
    """Peak resident memory of this process in MB, or None where unavailable (Windows).

    On Linux this is ``VmHWM`` of /proc/self/status: ``ru_maxrss`` would do, but a
    spawned child inherits its parent's high-water mark across ``exec``, so a child
    started by a big parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def _timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start
