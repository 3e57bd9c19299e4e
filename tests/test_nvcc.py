"""Every kernels/*.cu compiles to PTX with the real CUDA compiler (skipped without nvcc).

The emulator compiles the kernels with g++, which accepts things nvcc rejects (and
the other way round); this keeps the sources valid CUDA.  ``compute_75`` (Turing) is
the oldest virtual architecture nvcc 13 still accepts, and PTX for it runs on every
newer GPU.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
SOURCES = sorted(KERNELS.glob("*.cu"))
NVCC = shutil.which("nvcc")


def test_there_are_kernels():
    assert SOURCES, f"no .cu files in {KERNELS}"


@pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_nvcc_compiles_to_ptx(source, tmp_path):
    cmd = [
        NVCC,
        "-ptx",
        "-arch=compute_75",
        "-std=c++17",
        str(source),
        "-o",
        str(tmp_path / "k.ptx"),
    ]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
    ptx = (tmp_path / "k.ptx").read_text()
    # every extern "C" __global__ kernel shows up as an .entry with its plain C name
    for line in source.read_text().splitlines():
        if line.startswith('extern "C" __global__ void '):
            name = line.split("void ", 1)[1].split("(", 1)[0].strip()
            assert f".entry {name}(" in ptx, f"{name} missing from the PTX of {source.name}"
