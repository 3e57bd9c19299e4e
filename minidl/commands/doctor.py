"""``minidl doctor``: which devices work on this machine, and if not, why not.

    $ minidl doctor
    cpu       yes  NumPy 2.1.3
    cuda      no   CuPy is not installed (...); install CuPy for your CUDA version: ...
    cuda-emu  yes  g++ 12.2.0; kernels cached in ~/.cache/minidl/emu

followed by the tools the kernels are built with (g++ for the emulator; nvcc is
optional -- CuPy compiles the kernels itself with NVRTC -- but the tests use it to
check that every kernel is valid CUDA), and whether the pretrained VGG16 weights
were found, and where.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys


def _tool_version(cmd: list[str]) -> str | None:
    """First non-empty line a tool prints about its version, or None if it is missing."""
    path = shutil.which(cmd[0])
    if path is None:
        return None
    try:
        out = subprocess.run(
            [path, *cmd[1:]], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{path} (could not run it: {exc})"
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    if cmd[0] == "nvcc":  # the interesting line is "Cuda compilation tools, release 13.0, ..."
        lines = [ln for ln in lines if "release" in ln] or lines
    return f"{path}: {lines[-1] if cmd[0] == 'nvcc' else lines[0]}" if lines else path


def check_cpu() -> tuple[bool, str]:
    import numpy as np

    import minidl
    from minidl.backends import threads

    # What makes the cpu fast (README, "Convolution algorithms"), and whether it is on.
    memory = "kept for reuse" if minidl.KEEPS_FREED_MEMORY else "glibc's default"
    return True, (f"NumPy {np.__version__}; copies and matrix products on {threads.THREADS} "
                  f"thread(s); freed memory {memory}")  # fmt: skip


def check_cuda() -> tuple[bool, str]:
    from minidl.backends.cuda import cuda_available

    return cuda_available()


def check_cuda_emu() -> tuple[bool, str]:
    from minidl.backends.emulated import emulator_available

    return emulator_available()  # its reason names a missing compiler and how to install it


CHECKS = (("cpu", check_cpu), ("cuda", check_cuda), ("cuda-emu", check_cuda_emu))


def check_vgg16_weights() -> tuple[bool, str]:
    """Where :func:`find_weights` finds the VGG16 file, and whether its metadata reads."""
    from minidl.weights import LAYOUT_DESCRIPTIONS, WeightsError, find_weights, inspect_weights

    try:
        path = find_weights("vgg16")
    except FileNotFoundError as exc:
        # One line: "no vgg16 weights found; looked in: A; B. Run `minidl weights fetch ...`"
        return False, str(exc).replace(":\n  ", ": ").replace("\n  ", "; ").replace("\n", ". ")
    try:
        info = inspect_weights(path)
    except (WeightsError, OSError) as exc:
        return False, f"{path} is not usable: {exc}"
    layout = LAYOUT_DESCRIPTIONS[info.layout].split(" (")[0]
    return True, f"{path} ({layout}, {info.num_parameters:,} parameters)"


def run_doctor(args=None) -> int:
    """Print one line per device and the build tools; return 0 (information only)."""
    print(f"minidl doctor -- Python {platform.python_version()} on {platform.platform()}")
    print()
    for device, check in CHECKS:
        try:
            ok, reason = check()
        except Exception as exc:  # noqa: BLE001 -- a doctor reports, it does not crash
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        print(f"  {device:<9} {'yes' if ok else 'no ':<4} {reason}")
    print()
    print("tools:")
    gxx = _tool_version(["g++", "--version"])
    nvcc = _tool_version(["nvcc", "--version"])
    print(f"  g++   {gxx or 'missing (needed by cuda-emu)'}")
    print(
        f"  nvcc  {nvcc or 'not found (optional: CuPy compiles kernels with NVRTC; tests use nvcc to check them)'}"
    )
    print()
    print("weights:")
    ok, where = check_vgg16_weights()
    print(f"  vgg16  {'yes' if ok else 'no ':<4} {where}")
    sys.stdout.flush()
    return 0


def register(subparsers) -> None:
    """Add the ``doctor`` sub-command to the ``minidl`` command line."""
    parser = subparsers.add_parser(
        "doctor", help="show which devices (cpu, cuda, cuda-emu) work here, and why not"
    )
    parser.set_defaults(func=run_doctor)
