"""``minidl doctor`` reports every device, usable or not, without crashing."""

from __future__ import annotations

import sys

from minidl.cli import main


def test_doctor_lists_every_device(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for device in ("cpu", "cuda", "cuda-emu"):
        assert f"  {device} " in out
    assert "NumPy" in out and "nvcc" in out and "g++" in out


def test_doctor_explains_missing_cupy(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert main(["doctor"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  cuda "))
    assert " no " in line and "cupy-cuda" in line
