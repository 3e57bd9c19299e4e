"""minidl.runs: atomic files, the run log, image names, output checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minidl.runs import (
    RunLog,
    atomic_save_image,
    atomic_write_json,
    check_output_path,
    interrupted_path,
    numbered_path,
    peak_rss_mb,
    resolve_image,
)


def test_atomic_writes_leave_only_the_file(tmp_path):
    img = np.zeros((4, 5, 3), np.uint8)
    atomic_save_image(tmp_path / "a.png", img)
    atomic_write_json(tmp_path / "a.json", {"x": np.float32(1.5)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.png"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1.5}


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"old")
    with pytest.raises(ValueError):
        atomic_save_image(path, np.zeros((4, 5, 7), np.uint8))  # not an image shape
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]


def test_run_log_has_the_contract_keys():
    log = RunLog("stylize", {"size": 32}, "cpu")
    log.start()
    log.add(0, loss=3.0, content=1.0, style=1.0, tv=1.0)
    log.add(1, loss=2.0, content=1.0, style=0.5, tv=0.5)
    d = log.finish(loss=2.0, content=1.0, style=0.5, tv=0.5)
    assert set(d) == {"command", "args", "device", "iterations", "final", "seconds",
                      "seconds_per_iteration", "peak_rss_mb"}
    assert [r["i"] for r in d["iterations"]] == [0, 1]
    assert set(d["iterations"][0]) == {"i", "loss", "content", "style", "tv", "seconds"}
    assert d["final"]["loss"] == 2.0 and d["peak_rss_mb"] == pytest.approx(peak_rss_mb(), abs=50)


def test_names_and_paths(tmp_path):
    assert numbered_path("out/x.png", 100).name == "x_0100.png"
    assert interrupted_path("x.jpg").name == "x_interrupted.jpg"
    assert resolve_image("starry_night", max_side=64).shape == (40, 64, 3)
    with pytest.raises(ValueError, match="not a bundled image name .*starry_night"):
        resolve_image("starry_nite")
    with pytest.raises(ValueError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "x.png")
    with pytest.raises(ValueError, match="unknown image suffix"):
        check_output_path(tmp_path / "x.gif")
