"""When a test that needs a device this machine may not have should skip.

cuda-emu needs only a C++20 compiler.  Without one its tests skip; with one they
run, so that a kernel or an emulator header that no longer compiles fails them
(an "is the emulator usable?" probe would turn that breakage into silent skips).
"""

from __future__ import annotations

import os
import shutil

import pytest


def emulator_skip_reason() -> str | None:
    """Why the cuda-emu tests cannot run here: no C++ compiler (None: they can)."""
    name = os.environ.get("MINIDL_EMU_CXX", "g++")
    if shutil.which(name) is None:
        return f"the CUDA emulator needs a C++20 compiler and {name!r} is not on PATH"
    return None


#: For tests that run the kernels on cuda-emu.
needs_emulator = pytest.mark.skipif(emulator_skip_reason() is not None, reason=str(emulator_skip_reason()))
