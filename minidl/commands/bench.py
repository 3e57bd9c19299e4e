"""``minidl bench``: time minidl's VGG16 on the cpu backend.

Three reports, one per option:

* (default) each pass in a fresh process, against this machine's SGEMM (see
  :mod:`minidl.bench`);
* ``--kernels``: the hand-written CUDA kernels against the vendor libraries
  (see :mod:`minidl.kernel_bench`);
* ``--compare-torch``: minidl against PyTorch on the same work and device, in
  one process, as ratios (see :mod:`minidl.bench_torch`; PyTorch is optional).
"""

from __future__ import annotations

import argparse
import os
import sys

from minidl import bench
from minidl.backends import DEVICES


def register(subparsers) -> None:
    """Add the ``bench`` sub-command to the ``minidl`` command line."""
    parser = subparsers.add_parser(
        "bench", help="time minidl's VGG16 on the cpu backend against this machine's SGEMM"
    )
    parser.add_argument("--quick", action="store_true", help="128 px only (a few seconds)")
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="comma-separated image sizes in pixels, each >= 32 (default 224,512)",
    )
    parser.add_argument(
        "--kernels", action="store_true", help="benchmark the hand-written CUDA kernels instead"
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=None,
        help="device for --kernels (default cuda) or --compare-torch (default cpu)",
    )
    parser.add_argument(
        "--compare-torch",
        action="store_true",
        help="time VGG16 (224, 512 px) and the stylize loss (256 px) against PyTorch "
        "on the same device",
    )
    parser.add_argument(
        "--repeats", type=_positive, default=3, help="turns per framework for --compare-torch"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    """Entry point of ``minidl bench``."""
    if args.kernels:
        from minidl.kernel_bench import run_kernel_bench

        return run_kernel_bench(device=args.device or "cuda")
    if args.compare_torch:
        return run_compare_torch(args)
    sizes = [128] if args.quick else (args.sizes or [224, 512])

    m, k, n = bench.SGEMM_SHAPE
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
            r = bench.in_fresh_process(bench.bench_vgg16, size, backward)
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


def run_compare_torch(args) -> int:
    """``minidl bench --compare-torch``: the table of minidl/PyTorch ratios."""
    from minidl import bench_torch as bt

    device = args.device or "cpu"
    if device == "cuda-emu":
        print("minidl bench --compare-torch: --device is cpu or cuda (PyTorch has no "
              "cuda-emu; time the emulator with minidl bench --kernels)", file=sys.stderr)  # fmt: skip
        return 2
    missing = bt.torch_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    if device == "cuda":
        from minidl.backends.cuda import cuda_available

        ok, reason = cuda_available()
        if not ok:
            print(f"minidl bench --compare-torch: device 'cuda' is not available: {reason}",
                  file=sys.stderr)  # fmt: skip
            return 2
    rows = bt.DEFAULT_ROWS[device]
    if args.quick:
        rows = (("vgg16", 64), ("stylize", 64))
    elif args.sizes:
        rows = tuple(("vgg16", s) for s in args.sizes) + (("stylize", 256),)
    weights = bt.weights_source() or "random weights (set MINIDL_WEIGHTS for the real ones)"
    them = "PyTorch CPU" if device == "cpu" else "PyTorch CUDA (cuDNN, TF32 off, benchmark mode)"
    conv = os.environ.get("MINIDL_CONV", "auto")
    gemm = "" if device == "cpu" else f", MINIDL_GEMM={os.environ.get('MINIDL_GEMM', 'minidl')}"
    print(
        f"minidl ({device} backend, MINIDL_CONV={conv}{gemm}) against {them}, batch 1, "
        "float32.\n"
        f"weights: {weights}\n"
        "vgg16: forward to block5_conv3 and the gradient w.r.t. the input (frozen weights).\n"
        "stylize: one evaluation of the Gatys loss and its gradient (content block4_conv2,\n"
        "style block1_conv1..block5_conv1, TV; minidl stylize's weights).\n"
        f"The two take {args.repeats} turns each in this process; best time of each.\n"
    )
    header = (
        f"{'workload':<9} {'size':>5} {'minidl s':>9} {'torch s':>8} {'ratio':>6} {'median':>7} "
        f"{'minidl MB':>10} {'torch MB':>9} {'grad diff':>10}"
    )
    print(header)
    print("-" * len(header))
    for workload, size in rows:
        t = bt.compare_times(workload, size, args.repeats, device)
        mem = [None, None]
        if device == "cpu":
            mem = [bench.in_fresh_process(bt.peak_memory_mb, f, workload, size)
                   for f in ("minidl", "torch")]  # fmt: skip
        mem = ["n/a" if m is None else f"{m:.0f}" for m in mem]
        print(
            f"{workload:<9} {size:>5} {t['minidl']:>9.4f} {t['torch']:>8.4f} {t['ratio']:>6.2f} "
            f"{t['median_ratio']:>7.2f} {mem[0]:>10} {mem[1]:>9} {t['grad_error']:>10.1e}"
        )
    if device == "cpu":
        setting = (
            f"PyTorch used {t['torch_threads']} threads.  Both run with minidl's\n"
            "malloc settings (minidl/allocator.py), which hold for the whole process;\n"
            "one BLAS thread per call (threads.matmul) holds for NumPy's BLAS, not PyTorch's.\n"
            "MB: peak resident memory growth of one pass in a fresh process (weights included).\n"
        )
    else:
        setting = (
            "Each pass is timed from a\nsynchronised GPU to a synchronised GPU: the wall "
            "time includes Python launching\nthe kernels (tools/profile_cuda.py shows the "
            "GPU's own time per kernel).\n"
        )
    print(
        "\nratio: minidl / torch of the best times (below 1: minidl is faster).\n"
        "median: the median over the turns of each turn's minidl / torch; a busy machine\n"
        f"moves it less.  {setting}"
        "grad diff: max |minidl - torch| of the input gradient over max |torch|.  Where it\n"
        "is 1e-3 to 2e-2, a few ReLU inputs within float32 rounding of zero, or max-pool\n"
        "windows with near-ties, went different ways (the median pixel agrees to ~1e-7;\n"
        "in float64 minidl and PyTorch agree to 1e-15)."
    )
    return 0


def _sizes(text: str) -> list[int]:
    """Parse ``--sizes`` ("224,512"); VGG16 halves the size five times, so each is >= 32."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 224,512, got {text!r}") from None
    if not sizes or min(sizes) < 32:
        raise argparse.ArgumentTypeError(f"each size must be >= 32 pixels, got {text!r}")
    return sizes


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
