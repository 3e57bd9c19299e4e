"""``minidl bench``: how fast is the NumPy backend, compared with this machine's own SGEMM?

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

``minidl bench --kernels`` benchmarks the hand-written CUDA kernels instead
(see ``minidl.kernel_bench``).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

# The SGEMM used as the yard stick: (M, K) @ (K, N) in float32.  Its shape is that
# of a block4/block5 conv GEMM: C_out x C_in*9 x a chunk of 1024 output pixels.
SGEMM_SHAPE = (512, 4608, 1024)


def register(subparsers) -> None:
    """Add the ``bench`` sub-command to the ``minidl`` command line."""
    parser = subparsers.add_parser(
        "bench", help="time minidl's VGG16 on the cpu backend against this machine's SGEMM"
    )
    parser.add_argument("--quick", action="store_true", help="128 px only (a few seconds)")
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default="224,512",
        help="comma-separated image sizes in pixels, each >= 32 (default 224,512)",
    )
    parser.add_argument(
        "--kernels", action="store_true", help="benchmark the hand-written CUDA kernels instead"
    )
    parser.add_argument("--device", default="cuda", help="device for --kernels (default cuda)")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Entry point of ``minidl bench``."""
    if args.kernels:
        from minidl.kernel_bench import run_kernel_bench

        return run_kernel_bench(device=args.device)
    sizes = [128] if args.quick else args.sizes

    m, k, n = SGEMM_SHAPE
    print(
        "minidl's VGG16 (random weights) on the cpu backend, batch 1, float32, each row in a\n"
        "fresh process.\n"
        f"SGEMM: best float32 ({m}x{k}) @ ({k}x{n}) matmul, measured in that same process\n"
        "between the repeats of the pass, so that both see the same machine.\n"
    )
    header = (
        f"{'size':>5}  {'pass':<16} {'seconds':>8} {'GFLOP':>6} {'GFLOP/s':>8} {'SGEMM':>6} "
        f"{'%SGEMM':>7} {'peak RSS':>9}   time spent in"
    )
    print(header)
    print("-" * len(header))
    baselines = []
    for size in sizes:
        for backward in (False, True):
            r = _in_fresh_process(bench_vgg16, size, backward)
            rate = r["gflop"] / r["seconds"]
            rss = "n/a" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f} MB"
            share = ", ".join(
                f"{name} {100 * t / r['seconds']:.0f}%" for name, t in r["parts"].items()
            )
            print(
                f"{size:>5}  {r['pass']:<16} {r['seconds']:>8.2f} {r['gflop']:>6.1f} {rate:>8.1f} "
                f"{r['sgemm']:>6.0f} {100 * rate / r['sgemm']:>6.0f}% {rss:>9}   {share}"
            )
            baselines.append(r["baseline_rss_mb"])
    baseline = "n/a" if None in baselines else f"{max(baselines):.0f} MB"
    print(
        "\nGFLOP counts the convolution GEMMs only (2*M*N*K each); seconds include everything"
        "\n(im2col/col2im copies, ReLU, pooling, autograd).  The backward pass is w.r.t. the"
        "\ninput only (as in feature inversion; the weights are frozen): it counts the"
        "\nconv2d_grad_input GEMMs and computes no weight gradients."
        "\nPeak RSS is each child process's high-water mark: it includes"
        f"\nPython, NumPy and BLAS (a child holds {baseline} before building the network)."
        "\nOn a shared or busy machine timings vary from run to run: compare ratios, rerun."
    )
    return 0


def measure_sgemm(repeats: int = 3) -> float:
    """Best-of-``repeats`` float32 matmul throughput in GFLOP/s (arrays freed on return)."""
    m, k, n = SGEMM_SHAPE
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    a @ b  # warm-up: starts the BLAS threads
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
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

    sgemm = measure_sgemm()  # also starts the BLAS threads before the baseline
    baseline = _peak_rss_mb()
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
        "peak_rss_mb": _peak_rss_mb(),
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
    from minidl.backends import get_backend

    backend = get_backend("cpu")
    parts = {"conv": 0.0, "pool": 0.0}
    groups = {"conv2d": "conv", "conv2d_grad_input": "conv",
              "max_pool2d": "pool", "max_pool2d_grad": "pool"}  # fmt: skip

    def timed(method, part):
        def call(*args):
            start = time.perf_counter()
            result = method(*args)
            parts[part] += time.perf_counter() - start
            return result

        return call

    for name, part in groups.items():  # instance attributes shadow the methods...
        setattr(backend, name, timed(getattr(backend, name), part))
    try:
        yield parts
    finally:
        for name in groups:  # ...until they are deleted again
            delattr(backend, name)


def _sizes(text: str) -> list[int]:
    """Parse ``--sizes`` ("224,512"); VGG16 halves the size five times, so each is >= 32."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 224,512, got {text!r}") from None
    if not sizes or min(sizes) < 32:
        raise argparse.ArgumentTypeError(f"each size must be >= 32 pixels, got {text!r}")
    return sizes


def _in_fresh_process(func, *args):
    """Run ``func(*args)`` in a new Python process ("spawn") and return its result."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def _peak_rss_mb():
    """Peak resident memory of this process in MB, or None where unavailable (Windows)."""
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
