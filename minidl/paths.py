"""Where minidl finds and keeps files: the kernel sources and the user cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def kernels_dir() -> Path:
    """The folder holding ``kernels/*.cu`` and the emulator's ``cuda_emu.h``.

    ``$MINIDL_KERNELS`` if set (point it at a copy of the folder to experiment with
    the kernels); else ``kernels/`` of the source checkout this package is in; else
    the copy that ``pip install`` (not editable) puts in ``<prefix>/share/minidl/kernels``.
    """
    env = os.environ.get("MINIDL_KERNELS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[1] / "kernels"  # this file is <root>/minidl/
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "minidl" / "kernels"


def user_cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/minidl`` or ``~/.cache/minidl``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minidl"
