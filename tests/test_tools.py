"""The helper scripts in tools/: they run, and report what failed."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
