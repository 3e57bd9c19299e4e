"""minidl.inversion.optimize and ``minidl invert`` on tiny images (untrained VGG16)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minidl.cli import main
from minidl.image import load_image
from minidl.inversion.optimize import B, alpha_norm, invert, tv_beta
from minidl.models import vgg16
from minidl.tensor import tensor


@pytest.fixture(scope="module")
def model():
    return vgg16(weights=None)


def test_feature_error_falls_and_log_has_the_keys(model):
    image, log = invert("grace_hopper", "block1_conv2", size=32, iterations=8, model=model,
                        progress=False)
    assert image.shape == (32, 27, 3) and image.dtype == np.uint8
    rows = log["iterations"]
    assert {"i", "loss", "feature_error", "alpha_norm", "tv", "seconds"} <= set(rows[0])
    assert rows[0]["feature_error"] == pytest.approx(1.0, abs=0.05)  # from near-zero noise
    final = log["final"]
    assert final["feature_error"] < 0.8 * rows[0]["feature_error"]
    assert 0.0 < final["ssim"] <= 1.0
    assert {"command", "args", "device", "seconds", "seconds_per_iteration",
            "peak_rss_mb"} <= set(log)


def test_lbfgs_stops_once_a_round_of_iterations_gains_too_little(model, monkeypatch):
    from minidl.inversion import optimize

    monkeypatch.setattr(optimize, "PATIENCE", 3)
    run = {"size": 32, "model": model, "progress": False, "iterations": 9}
    # Asking each round of 3 iterations to cut the loss by 99.9%: it stops early.
    _, early = invert("grace_hopper", "block1_conv2", min_progress=0.999, **run)
    assert early["stop_reason"] == "converged: the loss fell < 99.9% in 3 iterations"
    _, full = invert("grace_hopper", "block1_conv2", min_progress=0.0, **run)
    assert full["stop_reason"] == "max_iter"
    # (the log has a row per loss evaluation; the line search may make several)
    assert len(early["iterations"]) < len(full["iterations"])
    with pytest.raises(ValueError, match="min_progress must be >= 0"):
        invert("grace_hopper", "block1_conv2", min_progress=float("nan"), **run)


def test_same_seed_same_image(model):
    a, _ = invert("grace_hopper", "block1_conv1", size=24, iterations=3, seed=3, model=model,
                  progress=False)
    b, _ = invert("grace_hopper", "block1_conv1", size=24, iterations=3, seed=3, model=model,
                  progress=False)
    c, _ = invert("grace_hopper", "block1_conv1", size=24, iterations=3, seed=4, model=model,
                  progress=False)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_regularisers_are_about_one_for_a_natural_image():
    from minidl.data import sample
    from minidl.models.vgg16 import preprocess

    x = preprocess(sample("grace_hopper", max_side=224))
    assert 0.05 < float(alpha_norm(x, 6)) < 20
    assert 0.05 < float(tv_beta(x, 2)) < 20
    flat = tensor(np.full((1, 3, 8, 8), B, np.float32))
    assert float(alpha_norm(flat, 6)) == pytest.approx(1.0)
    assert float(tv_beta(flat, 2)) == 0.0


def test_layers_list_writes_one_labelled_strip_and_prints_the_table(tmp_path, capsys):
    out, log = tmp_path / "strip.png", tmp_path / "log.json"
    status = main(["invert", "grace_hopper", "--layers", "block1_conv1,block1_conv2", "--random",
                   "--size", "32", "--iterations", "2", "-o", str(out), "--log", str(log)])
    stdout = capsys.readouterr().out
    assert status == 0
    assert "feature error" in stdout and "SSIM" in stdout
    assert stdout.count("block1_conv2") >= 2
    strip = load_image(out)
    assert strip.shape[1] > 2 * strip.shape[0]  # three panels side by side
    data = json.loads(log.read_text())
    assert set(data["final"]) == {"block1_conv1", "block1_conv2"}
    assert data["command"] == "invert"


@pytest.mark.parametrize("argv, message", [
    (["nope", "--layer", "block1_conv1"], "not a bundled image name"),
    (["grace_hopper", "--layer", "block9_conv1"], "unknown layer(s) block9_conv1; valid names"),
    (["grace_hopper", "--layer", "block5_conv3", "--size", "8"], "too small for block5_conv3"),
    (["grace_hopper", "--layer", "block1_conv1", "--iterations", "0"], "--iterations must be"),
    (["grace_hopper", "--layer", "block1_conv1", "--min-progress", "-1"], "--min-progress must be"),
    (["grace_hopper", "--layer", "block1_conv1", "-o", "{tmp}/no/x.png"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2(argv, message, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out.png")]
    status = main(["invert", *argv, "--random"])
    stderr = capsys.readouterr().err
    assert status == 2 and message in stderr and stderr.count("\n") == 1, stderr
    assert list(tmp_path.iterdir()) == []
