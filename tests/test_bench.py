"""`minidl bench`: one row measured in this process, and the FLOP count."""

import time

import numpy as np
import pytest
from devices import needs_emulator

import minidl
from minidl import bench
from minidl.models import vgg16


def test_conv_flops_of_vgg16_at_224px():
    # The well-known 15.5 GMAC of VGG16's convolutions at 224 px, as 2 FLOP per MAC.
    assert np.isclose(bench._conv_gflop(vgg16(), 224), 30.69, atol=0.01)


def test_one_row_reports_consistent_numbers():
    row = bench.bench_vgg16(32, backward=True)
    assert row["pass"] == "forward+backward"
    assert row["gflop"] == 2 * bench._conv_gflop(vgg16(), 32)
    assert row["seconds"] > 0 and row["sgemm"] > 0
    # every op kind was timed, and the parts add up to the whole pass
    assert row["parts"]["conv"] > 0 and row["parts"]["pool"] > 0
    assert np.isclose(sum(row["parts"].values()), row["seconds"])


def test_a_timed_call_inside_a_timed_call_counts_once():
    # conv2d_grad_input computes a 64 -> 64 layer's gradient as conv2d (MEC) of
    # rotated filters: that inner conv2d is part of the outer call's time.
    from minidl.backends import get_backend

    backend = get_backend("cpu")
    gy = np.ones((1, 64, 16, 16), dtype=np.float32)
    w = np.ones((64, 64, 3, 3), dtype=np.float32)
    with bench._timing_backend_ops() as parts:
        start = time.perf_counter()
        backend.conv2d_grad_input(gy, w, (16, 16), (1, 1), (1, 1), (1, 1))
        elapsed = time.perf_counter() - start
    assert 0 < parts["conv"] <= elapsed


def test_timing_leaves_the_backend_as_it_was():
    from minidl.backends import get_backend

    backend = get_backend("cpu")
    bench.bench_vgg16(32, backward=False)
    assert not {"conv2d", "max_pool2d"} & set(vars(backend))


def test_a_fresh_process_reports_its_own_peak_not_its_parents():
    # ru_maxrss survives exec: a child of a big parent would report the parent's peak.
    big = np.ones(200 * 2**20 // 8)  # 200 MB, touched
    child = bench.in_fresh_process(bench.peak_rss_mb)
    assert child is None or child < bench.peak_rss_mb() - 150
    del big


# ------------------------------------------------------------ --compare-torch


def _bench_command(argv):
    """Run ``minidl bench ARGV`` through the command's own parser."""
    import argparse

    from minidl.commands import bench as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["bench", *argv])
    return args.func(args)


def test_compare_torch_without_torch_says_so(monkeypatch, capsys):
    from minidl import bench_torch

    monkeypatch.setattr(bench_torch.importlib.util, "find_spec", lambda name: None)
    assert _bench_command(["--compare-torch"]) == 2
    err = capsys.readouterr().err
    assert "PyTorch is not installed" in err and "optional" in err


def test_compare_torch_runs_both_on_the_same_work(monkeypatch):
    pytest.importorskip("torch")
    from minidl import bench_torch

    monkeypatch.delenv("MINIDL_WEIGHTS", raising=False)  # random weights: fast and offline
    row = bench_torch.compare_times("stylize", 32, repeats=1)
    assert row["minidl"] > 0 and row["torch"] > 0
    assert np.isclose(row["ratio"], row["minidl"] / row["torch"])
    assert np.isclose(row["median_ratio"], row["ratio"])  # one turn: the same ratio
    # same weights, same input: the input gradients agree to float32 rounding
    assert row["grad_error"] < 1e-4


@needs_emulator
def test_compare_torch_minidl_side_runs_on_a_kernel_device(monkeypatch):
    """--compare-torch --device cuda builds minidl's pass on that device: the same
    input gradient as on the cpu (shown here on cuda-emu, which needs no GPU)."""
    from minidl import bench_torch

    monkeypatch.delenv("MINIDL_WEIGHTS", raising=False)
    monkeypatch.setenv("MINIDL_GEMM", "cublas")  # NumPy's BLAS: the emulated SGEMM is slow
    minidl.manual_seed(0)
    on_cpu = bench_torch.minidl_pass("vgg16", 32, bench_torch._minidl_model("cpu"))()
    minidl.manual_seed(0)
    model = bench_torch._minidl_model("cuda-emu")
    on_emu = bench_torch.minidl_pass("vgg16", 32, model, "cuda-emu")()
    assert on_emu.device == "cuda-emu"
    scale = np.abs(on_cpu.numpy()).max()
    assert scale > 0
    np.testing.assert_allclose(on_emu.numpy(), on_cpu.numpy(), atol=1e-4 * scale)


def test_compare_torch_refuses_the_emulator(capsys):
    assert _bench_command(["--compare-torch", "--device", "cuda-emu"]) == 2
    assert "--device is cpu or cuda" in capsys.readouterr().err
