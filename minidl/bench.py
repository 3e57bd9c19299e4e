"""``minidl bench``: how fast is the NumPy backend, compared with this machine's own SGEMM?

Almost all the arithmetic of a VGG16 is in its convolutions, and the cpu backend
turns each convolution into im2col (copies) + one GEMM (BLAS).  So the honest yard
stick is the SGEMM throughput of the same BLAS on the same machine: the benchmark
runs a VGG16-shaped stack and reports what fraction of SGEMM's GFLOP/s the whole
network reaches (copies, ReLU and pooling included).

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
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

# VGG16's feature extractor: conv 3x3 (padding 1) + ReLU with this many output
# channels, "M" = 2x2 max-pool with stride 2.
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                512, 512, 512, "M", 512, 512, 512, "M")  # fmt: skip

# The SGEMM used as the yard stick: (M, K) @ (K, N) in float32.  Its shape is that
# of a block4/block5 conv GEMM: C_out x C_in*9 x a chunk of 1024 output pixels.
SGEMM_SHAPE = (512, 4608, 1024)

ONE, PAD, DIL = (1, 1), (1, 1), (1, 1)  # conv stride, padding, dilation
POOL = (2, 2)  # max-pool kernel and stride


def register(subparsers) -> None:
    """Add the ``bench`` sub-command to the ``minidl`` command line."""
    parser = subparsers.add_parser(
        "bench", help="time the cpu backend on a VGG16-shaped network against SGEMM"
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
        "VGG16 conv stack on the cpu backend, batch 1, float32, each row in a fresh process.\n"
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
        "\n(im2col/col2im copies, ReLU, pooling).  The backward pass is w.r.t. the input only"
        "\n(as in feature inversion): it counts the conv2d_grad_input GEMMs and computes no"
        "\nweight gradients.  Peak RSS is each child process's high-water mark: it includes"
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
    """Time a VGG16-shaped forward (and backward w.r.t. the input) pass at ``size`` px.

    Runs the pass a few times, each time after measuring SGEMM, and keeps the
    fastest of each; returns seconds, GFLOP, per-op seconds, SGEMM GFLOP/s and the
    process's peak RSS.
    """
    from minidl.backends.cpu import CpuBackend

    sgemm = measure_sgemm()  # also starts the BLAS threads before the baseline
    baseline = _peak_rss_mb()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, size, size), dtype=np.float32)
    weights, gflop, c_in, hw = [], 0.0, 3, size
    for layer in VGG16_LAYERS:
        if layer == "M":
            hw //= 2
            continue
        std = math.sqrt(2.0 / (c_in * 9))  # He initialisation (a Python float keeps float32)
        weights.append(rng.standard_normal((layer, c_in, 3, 3), dtype=np.float32) * std)
        gflop += 2 * layer * (c_in * 9) * hw * hw / 1e9
        c_in = layer
    if backward:
        gflop *= 2  # one conv2d_grad_input GEMM per conv2d GEMM

    backend = CpuBackend()
    best, best_parts = float("inf"), {}
    repeats = 3 if size <= 256 else 2
    for _ in range(repeats):
        sgemm = max(sgemm, measure_sgemm())
        parts = dict.fromkeys(("conv", "relu", "pool"), 0.0)
        start = time.perf_counter()
        out = _vgg16_pass(backend, x, weights, backward, parts)
        seconds = time.perf_counter() - start
        assert out.dtype == np.float32, f"the pass ran in {out.dtype}, not float32"
        if seconds < best:
            best, best_parts = seconds, parts
    peak = _peak_rss_mb()
    return {
        "pass": "forward+backward" if backward else "forward",
        "seconds": best,
        "gflop": gflop,
        "parts": best_parts,
        "sgemm": sgemm,
        "peak_rss_mb": peak,
        "baseline_rss_mb": baseline,
    }


def _vgg16_pass(backend, x, weights, backward, parts):
    """One pass through the stack, written directly on arrays; adds op times into ``parts``.

    Forward keeps, per layer, what backward needs: the ReLU mask (y > 0) and the
    pooling switches.  Backward goes through the layers in reverse:
    pool -> max_pool2d_grad, ReLU -> multiply by the mask, conv -> conv2d_grad_input.
    """
    tape = []  # (kind, what backward needs, input spatial size)
    weight_iter = iter(weights)
    for layer in VGG16_LAYERS:
        hw = x.shape[2:]
        if layer == "M":
            t = time.perf_counter()
            x, switches = backend.max_pool2d(x, POOL, POOL, (0, 0))
            parts["pool"] += time.perf_counter() - t
            tape.append(("pool", switches, hw))
        else:
            w = next(weight_iter)
            t = time.perf_counter()
            x = backend.conv2d(x, w, ONE, PAD, DIL)
            parts["conv"] += time.perf_counter() - t
            t = time.perf_counter()
            np.maximum(x, 0, out=x)
            mask = x > 0 if backward else None
            parts["relu"] += time.perf_counter() - t
            tape.append(("conv", (w, mask), hw))
    if not backward:
        return x

    g = np.ones_like(x)  # gradient of sum(output)
    for kind, saved, hw in reversed(tape):
        t = time.perf_counter()
        if kind == "pool":
            g = backend.max_pool2d_grad(g, saved, hw, (2, 2), (2, 2), (0, 0))
            parts["pool"] += time.perf_counter() - t
        else:
            w, mask = saved
            g *= mask
            parts["relu"] += time.perf_counter() - t
            t = time.perf_counter()
            g = backend.conv2d_grad_input(g, w, hw, ONE, PAD, DIL)
            parts["conv"] += time.perf_counter() - t
    return g


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
