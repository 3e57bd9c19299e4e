"""When a test that needs a device this machine may not have should skip.

cuda-emu needs only a C++20 compiler.  Without one its tests skip; with one they
run, so that a kernel or an emulator header that no longer compiles fails them
(an "is the emulator usable?" probe would turn that breakage into silent skips).
"""

from __future__ import annotations

import pytest

from minidl.backends import emulated


def emulator_skip_reason() -> str | None:
    """Why the cuda-emu tests cannot run here: no C++ compiler (None: they can)."""
    try:
        emulated._compiler()  # the emulator's own lookup (MINIDL_EMU_CXX, else g++)
    except RuntimeError as error:
        return str(error)
    return None


def skip_reason(device: str) -> str | None:
    """Why tests on ``device`` ("cuda" or "cuda-emu") cannot run here (None: they can)."""
    if device == "cuda":
        from minidl.backends.cuda import cuda_available

        ok, reason = cuda_available()
        return None if ok else reason
    return emulator_skip_reason()


_NO_EMULATOR = emulator_skip_reason()

#: For tests that run the kernels on cuda-emu.
needs_emulator = pytest.mark.skipif(_NO_EMULATOR is not None, reason=str(_NO_EMULATOR))
