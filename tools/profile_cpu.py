"""Where the time of one CPU pass goes, in minidl and (when importable) in PyTorch.

    python tools/profile_cpu.py [--workload vgg16|stylize] [--size 256] [--passes 5] [--by-layer]

Runs the pass of ``minidl bench --compare-torch`` (see :mod:`minidl.bench_torch`) a
few times for each framework and prints, per framework, the operations that took
the most time per pass.

* minidl: every operation of the cpu backend (``backends/cpu.py``) is timed where
  Python calls it: wall time, the helper threads' share of it included.  A
  convolution is listed with the algorithm that ran it (Winograd, MEC or im2col).
  What is left of the pass is Python's: the autograd engine, and the NumPy calls
  the tensor ops make themselves (ReLU, the losses, the sums of gradients).
* PyTorch: its profiler's self CPU time per operation.

"cores busy" is the CPU time of the process over the wall time: 2.0 on two cores
means neither waited.  Needs nothing but minidl; PyTorch is optional.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import time

from minidl import bench, bench_torch
from minidl.backends import mec, winograd

#: The functions (module, name) whose call inside a backend operation names the
#: convolution's algorithm; im2col, when none of them ran.
ALGORITHMS = ((winograd, "conv2d"), (winograd, "conv2d_grad_weight"), (mec, "conv2d"))


class OperationTimer:
    """``with OperationTimer() as timer:`` times each cpu backend operation called in
    the block (outermost calls only, see ``minidl.bench.timing_backend_ops``):
    timer.seconds[label] and timer.calls[label]."""

    def __init__(self, by_layer: bool = False):
        self.by_layer = by_layer
        self._algorithm = None  # set by the algorithm functions during a convolution
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        for module, name in ALGORITHMS:
            function = getattr(module, name)
            self._stack.callback(setattr, module, name, function)
            setattr(module, name, self._naming(module.__name__.rsplit(".", 1)[1], function))
        self.seconds, self.calls = self._stack.enter_context(bench.timing_backend_ops(self._label))
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def _naming(self, algorithm, function):
        def named(*args, **kwargs):
            self._algorithm = self._algorithm or algorithm
            return function(*args, **kwargs)

        return named

    def _label(self, name, args):
        """The row of a finished outermost call of backend operation ``name``."""
        algorithm, self._algorithm = self._algorithm or "im2col", None
        if not name.startswith("conv2d"):
            return name
        label = f"{name} ({algorithm})"
        if self.by_layer:  # the layer's channels, and the size of its first argument
            first, second = args[0], args[1]
            if name == "conv2d_grad_weight":  # (x, gy)
                c_in, c_out = first.shape[1], second.shape[1]
            else:  # (x or gy, w), w of shape (C_out, C_in, kh, kw)
                c_out, c_in = second.shape[:2]
            label += f" {c_in}->{c_out} at {first.shape[2]}x{first.shape[3]}"
        return label


def run_passes(run, passes: int):
    """(wall ms per pass, cores busy) of ``passes`` calls of run."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(passes):
        run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall * 1e3 / passes, cpu / wall


def profile_minidl(run, passes: int, by_layer: bool):
    """(ms per pass by operation, calls per pass by operation, wall ms per pass,
    cores busy) of ``passes`` calls of run."""
    run()  # warm-up
    with OperationTimer(by_layer) as timer:
        wall, busy = run_passes(run, passes)
    per_op = {label: seconds * 1e3 / passes for label, seconds in timer.seconds.items()}
    calls = {label: count / passes for label, count in timer.calls.items()}
    return per_op, calls, wall, busy


def profile_torch(run, passes: int):
    """As :func:`profile_minidl`, with PyTorch's self CPU time per operation."""
    from torch.profiler import ProfilerActivity, profile

    run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall, busy = run_passes(run, passes)
    per_op, calls = {}, {}
    for event in prof.key_averages():
        if event.self_cpu_time_total > 0:
            per_op[event.key] = event.self_cpu_time_total / 1e3 / passes
            calls[event.key] = event.count / passes
    return per_op, calls, wall, busy


def report(title, per_op, calls, wall, busy, top, rest_label=None):
    print(f"\n{title}: {wall:.0f} ms per pass, {busy:.2f} cores busy")
    print("   ms/pass  share  calls  operation")
    ranked = sorted(per_op.items(), key=lambda kv: -kv[1])
    for label, ms in ranked[:top]:
        print(f"  {ms:8.1f}  {100 * ms / wall:4.0f}%  {calls[label]:5.0f}  {label}")
    if len(ranked) > top:
        ms = sum(ms for _, ms in ranked[top:])
        print(f"  {ms:8.1f}  {100 * ms / wall:4.0f}%         {len(ranked) - top} other operations")
    if rest_label:
        rest = wall - sum(per_op.values())
        print(f"  {rest:8.1f}  {100 * rest / wall:4.0f}%         {rest_label}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=("vgg16", "stylize"), default="stylize")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--by-layer", action="store_true", help="a row per convolution layer and algorithm"
    )
    parser.add_argument("--no-torch", action="store_true", help="minidl only")
    args = parser.parse_args()

    model = bench_torch._minidl_model("cpu")
    what = f"{args.workload} at {args.size} px, {args.passes} passes"
    weights = (
        bench_torch.weights_source() or "random weights (set MINIDL_WEIGHTS for the real ones)"
    )
    print(f"{what}; weights: {weights}")
    minidl_run = bench_torch.minidl_pass(args.workload, args.size, model)
    per_op, calls, wall, busy = profile_minidl(minidl_run, args.passes, args.by_layer)
    report("minidl", per_op, calls, wall, busy, args.top,
           rest_label="outside the backend's operations: autograd, Python, the tensor ops' own NumPy")  # fmt: skip
    if args.no_torch or importlib.util.find_spec("torch") is None:
        print("\n(PyTorch: not profiled; it is optional: pip install torch)")
        return 0
    torch_run = bench_torch.torch_pass(args.workload, args.size, model)
    report("PyTorch (self CPU time)", *profile_torch(torch_run, args.passes), args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
