"""Skip marks for tests that need a device this machine may not have."""

from __future__ import annotations

import pytest


def _emulator_ok() -> bool:
    try:
        from minidl.backends.emulated import emulator_available
    except ImportError:
        return False
    return emulator_available()[0]


#: For tests that run the kernels on cuda-emu (needs g++).
needs_emulator = pytest.mark.skipif(not _emulator_ok(), reason="cuda-emu not usable here")
