"""The helper scripts in tools/: they run, and report what failed."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minidl.backends import get_backend
from minidl.backends import winograd as W
from minidl.backends.winograd import conv_algorithm

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_gpu_check_runs_every_step_and_counts_the_failures(tmp_path):
    """With a stand-in Python that succeeds at everything, only steps outside Python can
    fail (nvidia-smi, where there is no GPU); the exit status counts the failed steps."""
    env = {k: v for k, v in os.environ.items() if k != "MINIDL_WEIGHTS"}
    env["PYTHON"] = shutil.which("true")
    done = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    log = (tmp_path / "gpu_check.log").read_text()
    exits = [int(code) for code in re.findall(r"^=== [\w-]+: exit (\d+)", log, re.MULTILINE)]
    steps = ["gpu", "versions", "doctor", "tests", "kernels", "vgg-vs-cudnn",
             "vgg-vs-cudnn-im2col", "lesson-04"]  # fmt: skip
    assert len(exits) == len(steps), log
    for step in steps:
        assert f"=== {step}: " in log
    assert "stylize-512" not in log  # needs MINIDL_WEIGHTS
    failed = sum(code != 0 for code in exits)
    assert done.returncode == failed
    assert f"=== {failed} step(s) failed" in done.stdout


def test_profile_cuda_explains_itself_without_a_gpu():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "profile_cuda.py"), "--help"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--workload" in done.stdout and "GPU" in done.stdout


def _profile_cpu():
    """tools/profile_cpu.py as a module (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location("profile_cpu", ROOT / "tools" / "profile_cpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("algorithm", ["im2col", "winograd", "mec"])
def test_profile_cpu_times_each_convolution_under_its_algorithm(algorithm):
    profile_cpu = _profile_cpu()
    backend = get_backend("cpu")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    one = (1, 1)
    with conv_algorithm(algorithm), profile_cpu.OperationTimer(by_layer=True) as timer:
        y = backend.conv2d(x, w, one, one, one)
        backend.conv2d_grad_input(y, w, (9, 9), one, one, one)
        backend.max_pool2d(y, (2, 2), (2, 2), (0, 0))
    # (MEC's input gradient calls backend.conv2d with rotated filters: still one call)
    assert dict(timer.calls) == {
        f"conv2d ({algorithm}) 4->6 at 9x9": 1,
        f"conv2d_grad_input ({algorithm}) 4->6 at 9x9": 1,
        "max_pool2d": 1,
    }
    assert all(seconds > 0 for seconds in timer.seconds.values())
    assert "conv2d" not in vars(backend)  # the backend's own methods are back
    assert W.conv2d.__module__ == "minidl.backends.winograd"


def test_profile_cpu_accounts_for_the_whole_pass():
    env = {k: v for k, v in os.environ.items() if k != "MINIDL_WEIGHTS"}
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "profile_cpu.py"), "--workload", "vgg16",
                           "--size", "32", "--passes", "1", "--no-torch"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^\s+([\d.]+)\s+(\d+)%\s+(?:\d+\s+)?(\D.*)$", done.stdout, re.MULTILINE)
    labels = [label for _, _, label in rows]
    assert any(label.startswith("conv2d_grad_input") for label in labels), done.stdout
    assert labels[-1].startswith("outside the backend's operations"), done.stdout
    wall = float(re.search(r"minidl: ([\d.]+) ms per pass", done.stdout).group(1))
    assert abs(sum(float(ms) for ms, _, _ in rows) - wall) <= 0.02 * wall + 1
