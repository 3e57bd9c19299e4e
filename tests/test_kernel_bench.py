"""``minidl bench --kernels`` on cuda-emu, and its cuda code path on a stand-in CuPy.

The cuda benchmark only really runs on a GPU.  To catch plain Python mistakes in it
on any machine, the second test gives it a fake ``cupy`` made of NumPy plus the
emulator (as ``RawModule``), and shrinks the problem sizes.
"""

from __future__ import annotations

import types

import numpy as np
from devices import needs_emulator

from minidl import kernel_bench
from minidl.backends import cuda as cuda_glue
from minidl.backends import get_backend
from minidl.cli import main


@needs_emulator
def test_bench_kernels_on_cuda_emu_checks_every_family(capsys):
    assert main(["bench", "--kernels", "--device", "cuda-emu"]) == 0
    out = capsys.readouterr().out
    for family in ("conv2d_grad_input", "max_pool2d_grad", "max_unpool2d", "avg_pool2d", "gram",
                   "winograd conv2d"):  # fmt: skip
        assert family in out
    assert "all kernel families match" in out


def test_bench_kernels_unknown_device(capsys):
    assert kernel_bench.run_kernel_bench("tpu") == 2


def _fake_cupy():
    """Just enough of CuPy's surface, on NumPy, for kernel_bench and the cuda backend."""

    class Event:
        def record(self):
            pass

        def synchronize(self):
            pass

    class Generator:
        def __init__(self, seed):
            self._rng = np.random.default_rng(seed)

        def standard_normal(self, shape, dtype=np.float64):
            return self._rng.standard_normal(shape, dtype=dtype)

    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        getDeviceProperties=lambda i: {"name": b"Fake GPU (NumPy + emulator)"},
        runtimeGetVersion=lambda: 13000,
        driverGetVersion=lambda: 13000,
    )
    fake = types.SimpleNamespace(**{name: getattr(np, name) for name in dir(np) if name[0] != "_"})
    fake.__name__ = "cupy"
    fake.__version__ = "0-fake"
    fake.cuda = types.SimpleNamespace(
        Event=Event, get_elapsed_time=lambda a, b: 1.0, runtime=runtime
    )
    fake.random = types.SimpleNamespace(default_rng=Generator)
    fake.from_dlpack = np.from_dlpack
    return fake


@needs_emulator
def test_bench_kernels_cuda_path_runs_on_a_stand_in(monkeypatch, capsys):
    monkeypatch.setattr(cuda_glue, "_import_cupy", _fake_cupy)
    monkeypatch.setattr(cuda_glue, "_cupy_loader", cuda_glue._emulated_loader)
    monkeypatch.setattr(kernel_bench, "_torch_cudnn", lambda: None)
    monkeypatch.setattr(kernel_bench, "REPEAT", 1)
    monkeypatch.setattr(
        kernel_bench,
        "SIZES",
        {
            "gemm": [(19, 23, 37, "tiny")],
            "gram": (2, 17, 4, 6),
            "conv": (2, 3, 6, 5, 4),
            "pool": (2, 3, 6, 8),
        },
    )
    get_backend.cache_clear()
    try:
        code = kernel_bench.run_kernel_bench("cuda")
    finally:
        get_backend.cache_clear()
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Fake GPU" in out and "all results agree" in out
    for name in (
        "sgemm tiny",
        "gram",
        "conv2d_grad_weight",
        "conv2d (winograd+gemm)",
        "conv2d_grad_input (winograd)",
        "conv2d_grad_weight (winograd)",
        "max_unpool2d_grad",
        "avg_pool2d_grad",
    ):
        assert name in out
