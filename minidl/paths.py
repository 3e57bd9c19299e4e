"""Where minidl finds and keeps files: the kernel sources and the user cache."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

# Where the kernels are in a source checkout, and where a plain `pip install` puts them.
CHECKOUT_KERNELS = Path(__file__).resolve().parents[1] / "kernels"  # this file is <root>/minidl/
INSTALLED_KERNELS = Path(sys.prefix) / "share" / "minidl" / "kernels"


def kernels_dir() -> Path:
    """The folder holding ``kernels/*.cu`` and the emulator's ``cuda_emu.h``.

    ``$MINIDL_KERNELS`` if set (point it at a copy of the folder to experiment with
    the kernels); else ``kernels/`` of the source checkout this package is in; else
    the copy that ``pip install`` (not editable) puts in ``<prefix>/share/minidl/kernels``.
    """
    env = os.environ.get("MINIDL_KERNELS")
    if env:
        return Path(env)
    return _checkout_or_installed(CHECKOUT_KERNELS)


@functools.cache
def _checkout_or_installed(checkout: Path) -> Path:
    # Looked at once per process: every kernel launch asks for the folder.
    return checkout if checkout.is_dir() else INSTALLED_KERNELS


def user_cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/minidl`` or ``~/.cache/minidl``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minidl"
