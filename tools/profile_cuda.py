"""Which GPU kernels take the time of one pass, in minidl and in PyTorch (needs a GPU).

    python tools/profile_cuda.py [--workload vgg16|stylize] [--size 512] [--top 12]

Runs the pass of ``minidl bench --compare-torch --device cuda`` (see
:mod:`minidl.bench_torch`) a few times for each framework under PyTorch's profiler,
which records every kernel on the GPU -- CuPy's launches of ``kernels/*.cu`` as
well as cuDNN's -- and prints, per framework, the kernels that took the most GPU
time per pass and the total.  When the total is well below the pass's wall time,
the GPU was waiting for Python (launches, autograd): the pass is host-bound.

Needs CuPy and PyTorch with CUDA; not imported by the library.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from minidl import bench_torch


def profile(run, passes: int):
    """(GPU ms per pass by kernel name, wall ms per pass) of ``passes`` calls of run."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    run()  # warm-up: compiles, cuDNN's algorithm search
    bench_torch.synchronize("cuda")
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for _ in range(passes):
            run()
        bench_torch.synchronize("cuda")
        wall = (time.perf_counter() - start) / passes * 1e3
    per_kernel = defaultdict(float)
    for event in prof.key_averages():
        # "self" time: a kernel's own, not again in the operation that launched it
        gpu_us = getattr(event, "self_device_time_total", None)
        if gpu_us is None:  # older PyTorch
            gpu_us = event.self_cuda_time_total
        if gpu_us > 0:
            per_kernel[event.key] += gpu_us / 1e3 / passes
    return dict(per_kernel), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=("vgg16", "stylize"), default="stylize")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()

    model = bench_torch._minidl_model("cuda")
    runs = {
        "minidl": bench_torch.minidl_pass(args.workload, args.size, model, "cuda"),
        "torch": bench_torch.torch_pass(args.workload, args.size, model, "cuda"),
    }
    for name, run in runs.items():
        per_kernel, wall = profile(run, args.passes)
        total = sum(per_kernel.values())
        print(f"\n{name}: {args.workload} at {args.size} px, GPU {total:.2f} ms per pass "
              f"(wall {wall:.2f} ms); the top {args.top} kernels:")  # fmt: skip
        for kernel, ms in sorted(per_kernel.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"  {ms:8.3f} ms  {100 * ms / total:5.1f}%  {kernel[:90]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
