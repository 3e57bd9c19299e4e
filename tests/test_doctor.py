"""``minidl doctor`` reports every device, usable or not, without crashing,
and where the VGG16 weights are; no command ends in a traceback when its
reader stops early (``minidl doctor | head -1``)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_weights import NOTOP, write_keras2

from minidl.cli import main
from minidl.weights import download


def test_doctor_lists_every_device(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for device in ("cpu", "cuda", "cuda-emu"):
        assert f"  {device} " in out
    assert "NumPy" in out and "nvcc" in out and "g++" in out
    # the cpu's speed settings, as this process has them
    from minidl.backends import threads

    assert f"copies and matrix products on {threads.THREADS} thread(s)" in out


def test_doctor_explains_missing_cupy(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert main(["doctor"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  cuda "))
    assert " no " in line and "cupy-cuda" in line


def vgg16_line(out: str) -> str:
    return next(ln for ln in out.splitlines() if ln.startswith("  vgg16 "))


def test_doctor_says_where_the_weights_are(tmp_path, capsys, monkeypatch):
    path = write_keras2(tmp_path / "vgg16_mine.h5", NOTOP)
    monkeypatch.setenv("MINIDL_WEIGHTS", str(path))
    assert main(["doctor"]) == 0
    line = vgg16_line(capsys.readouterr().out)
    assert f"yes  {path} (Keras 2 legacy HDF5, 297 parameters)" in line


def test_doctor_says_the_weights_are_missing_and_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MINIDL_WEIGHTS", raising=False)
    monkeypatch.setattr(download, "PROJECT_WEIGHTS_DIR", tmp_path / "none")
    monkeypatch.setattr(download, "cache_dir", lambda: tmp_path / "cache")
    assert main(["doctor"]) == 0
    line = vgg16_line(capsys.readouterr().out)
    assert " no " in line and "MINIDL_WEIGHTS (not set)" in line
    assert "minidl weights fetch vgg16" in line


def test_doctor_says_a_broken_weight_file_is_unusable(tmp_path, capsys, monkeypatch):
    (tmp_path / "vgg16.h5").write_text("not hdf5")
    monkeypatch.setenv("MINIDL_WEIGHTS", str(tmp_path / "vgg16.h5"))
    assert main(["doctor"]) == 0
    assert "vgg16.h5 is not usable: " in vgg16_line(capsys.readouterr().out)


@pytest.mark.parametrize("command", [["doctor"], ["weights", "info", "FILE"]])
def test_a_closed_pipe_ends_quietly(tmp_path, command):
    """The reader closes the pipe before reading anything, as ``| head -0`` would."""
    command = [str(write_keras2(tmp_path / "w.h5", NOTOP)) if a == "FILE" else a for a in command]
    child = subprocess.Popen([sys.executable, "-m", "minidl.cli", *command],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    child.stdout.close()
    err = child.stderr.read().decode()
    child.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
