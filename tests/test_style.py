"""minidl.style.gatys and ``minidl stylize`` on tiny images with an untrained VGG16.

An untrained network makes meaningless pictures but exercises every path: the
loss parts, the optimisers, blending, colours, the log, Ctrl-C and bad input.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minidl.cli import main
from minidl.image import load_image
from minidl.models import vgg16
from minidl.runs import RunInterrupted
from minidl.style import gatys, stylize
from minidl.style.colors import match_luminance, rgb_to_yuv

LOG_KEYS = {"command", "args", "device", "iterations", "final", "seconds",
            "seconds_per_iteration", "peak_rss_mb"}
# Shallow layers keep the network short: the tests check the plumbing, not the art.
SHALLOW = {"content_layers": ("block2_conv2",), "style_layers": ("block1_conv1", "block2_conv1")}
SMALL = dict(size=32, iterations=4, progress=False, **SHALLOW)
FAST = ("--random", "--size", 32, "--content-layers", "block2_conv2",
        "--style-layers", "block1_conv1,block2_conv1")


@pytest.fixture(scope="module")
def model():
    return vgg16(weights=None)


def test_loss_falls_and_log_has_the_documented_keys(model):
    image, log = stylize("grace_hopper", "starry_night", weights=model, size=32, iterations=4,
                         progress=False)  # the default layers
    assert image.dtype == np.uint8 and max(image.shape[:2]) == 32
    assert LOG_KEYS <= set(log)
    rows = log["iterations"]
    assert [r["i"] for r in rows] == list(range(5))  # the start, then 4 L-BFGS iterations
    assert {"i", "loss", "content", "style", "tv", "seconds"} <= set(rows[0])
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    final = log["final"]
    assert final["loss"] == pytest.approx(final["content"] + final["style"] + final["tv"], rel=1e-5)
    assert final["loss"] == min(r["loss"] for r in rows)
    assert log["stop_reason"] == "max_iter"  # L-BFGS's own word for it


def test_adam_and_random_init_also_lower_the_loss(model):
    _, log = stylize("grace_hopper", "starry_night", weights=model, optimizer="adam", lr=5.0,
                     init="random", **SMALL)
    rows = log["iterations"]
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_blend_weights_one_and_zero_equal_the_single_style(model):
    single, _ = stylize("grace_hopper", "starry_night", weights=model, **SMALL)
    blended, _ = stylize("grace_hopper", ["starry_night", "the_scream"], weights=model,
                         style_blend_weights=[1, 0], **SMALL)
    assert np.array_equal(single, blended)


def test_original_colors_keep_the_contents_chrominance(model):
    image, _ = stylize("grace_hopper", "starry_night", weights=model, original_colors=True,
                       **SMALL)
    content = gatys.resize_to(load_image_named("grace_hopper"), 32)
    uv_out, uv_content = rgb_to_yuv(image)[..., 1:], rgb_to_yuv(content)[..., 1:]
    # only uint8 rounding of R, G, B separates them (plus clipping at 0 and 255)
    assert np.mean(np.abs(uv_out - uv_content) < 3 / 255) > 0.97
    plain, _ = stylize("grace_hopper", "starry_night", weights=model, **SMALL)
    assert np.abs(rgb_to_yuv(plain)[..., 1:] - uv_content).mean() > \
        np.abs(uv_out - uv_content).mean()


def test_match_luminance_takes_y_from_one_and_uv_from_the_other():
    rng = np.random.default_rng(0)
    # colours near grey, so no pixel leaves the RGB cube (where clipping would change it)
    a = rng.integers(100, 150, (8, 8, 3), dtype=np.uint8)
    b = rng.integers(100, 150, (8, 8, 3), dtype=np.uint8)
    out = rgb_to_yuv(match_luminance(a, b))
    assert np.allclose(out[..., 0], rgb_to_yuv(a)[..., 0], atol=2 / 255)
    assert np.allclose(out[..., 1:], rgb_to_yuv(b)[..., 1:], atol=2 / 255)


def test_coarse_to_fine_ends_at_the_last_scale(model):
    image, log = stylize("grace_hopper", "starry_night", weights=model, scales=[32, 48],
                         iterations=2, progress=False, **SHALLOW)
    assert max(image.shape[:2]) == 48
    assert [r["size"] for r in log["iterations"]] == [32] * 3 + [48] * 3


def test_interrupt_raises_with_the_best_image(model, monkeypatch):
    calls = []

    def interrupt_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = gatys.stylize_loss
    monkeypatch.setattr(gatys, "stylize_loss", interrupt_on_third)
    with pytest.raises(RunInterrupted) as stopped:
        stylize("grace_hopper", "starry_night", weights=model, **SMALL)
    rows = stopped.value.log["iterations"]
    assert len(rows) == 2 and stopped.value.image.shape[2] == 3
    assert stopped.value.log["final"]["loss"] == min(r["loss"] for r in rows)


# ---------------------------------------------------------------- the command


def run_cli(capsys, *argv):
    status = main(["stylize", *map(str, argv)])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_command_writes_image_log_and_numbered_saves(tmp_path, capsys):
    out, log = tmp_path / "out.png", tmp_path / "log.json"
    status, stdout, _ = run_cli(capsys, "grace_hopper", "starry_night", "-o", out, *FAST,
                                "--iterations", 4, "--save-every", 2,
                                "--log", log)
    assert status == 0, stdout
    assert out.is_file() and (tmp_path / "out_0002.png").is_file()
    assert (tmp_path / "out_0004.png").is_file()
    data = json.loads(log.read_text())
    assert LOG_KEYS <= set(data) and data["command"] == "stylize"
    assert data["args"]["iterations"] == 4 and len(data["iterations"]) == 5
    assert f"wrote {out}" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "log.json", "out.png", "out_0002.png", "out_0004.png"]


def test_same_seed_same_png_bit_for_bit(tmp_path, capsys):
    args = ("grace_hopper", "starry_night", *FAST, "--iterations", 3,
            "--init", "random", "--seed", 7)
    for name in ("a.png", "b.png"):
        assert run_cli(capsys, *args, "-o", tmp_path / name)[0] == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_ctrl_c_writes_the_best_image_and_exits_130(tmp_path):
    out = tmp_path / "out.png"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "minidl.cli", "stylize", "grace_hopper", "starry_night", "-o",
         str(out), *map(str, FAST), "--iterations", "100000", "--save-every", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    deadline = time.time() + 60
    while not (tmp_path / "out_0001.png").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    best = tmp_path / "out_interrupted.png"
    assert f"best image so far written to {best}" in stderr
    assert load_image(best).shape == (32, 27, 3)
    assert not out.exists()


def test_adain_options_reach_the_adain_stylize(tmp_path, capsys, monkeypatch):
    seen = {}

    def fake(content, styles, method, **options):
        seen.update(options, method=method, content=content, styles=styles)
        return np.zeros((8, 8, 3), np.uint8), {"final": {}}

    monkeypatch.setattr("minidl.style.stylize", fake)
    status, _, _ = run_cli(capsys, "grace_hopper", "starry_night", "the_scream", "-o",
                           tmp_path / "o.png", "--method", "adain", "--alpha", "0.5",
                           "--preserve-color", "--decoder", "d.npz",
                           "--style-blend-weights", "1,3", "--size", "64")
    assert status == 0
    assert seen == {"method": "adain", "content": "grace_hopper",
                        "styles": ["starry_night", "the_scream"], "alpha": 0.5, "preserve_color": True,
                        "decoder": "d.npz", "style_blend_weights": [1.0, 3.0], "size": 64,
                        "device": "cpu", "weights": None}


@pytest.mark.parametrize("argv, message", [
    (["nope", "starry_night"], "not a bundled image name (starry_night,"),
    (["{unreadable}", "starry_night"], "cannot read image"),
    (["grace_hopper", "starry_night", "--style-layers", "block9_conv1"],
     "unknown style layer(s) block9_conv1; valid names: block1_conv1"),
    (["grace_hopper", "starry_night", "--size", "8"], "too small for block5_conv1"),
    (["grace_hopper", "starry_night", "the_scream", "--style-blend-weights", "1"],
     "got 1 weight(s) for 2 style image(s)"),
    (["grace_hopper", "starry_night", "--iterations", "0"], "--iterations must be a positive"),
    (["grace_hopper", "starry_night", "--size", "0"], "--size must be a positive"),
    (["grace_hopper", "starry_night", "-o", "{missing}/out.png"], "does not exist"),
    (["grace_hopper", "starry_night", "--weights", "{missing}/w.h5"],
     "minidl weights fetch vgg16"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(argv, message, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    argv = [a.format(unreadable=tmp_path / "bad.png", missing=tmp_path / "missing")
            for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out.png")]
    if "--weights" not in argv:
        argv += ["--random"]
    status, _, stderr = run_cli(capsys, *argv, "--iterations", argv.count("--iterations") and
                                argv[argv.index("--iterations") + 1] or "1")
    assert status == 2
    assert message in stderr and stderr.count("\n") == 1, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png"]


def test_weights_not_found_says_how_to_get_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINIDL_WEIGHTS", str(tmp_path / "nowhere"))
    status, _, stderr = run_cli(capsys, "grace_hopper", "starry_night", "-o",
                                tmp_path / "o.png", "--size", 32)
    assert status == 2 and "minidl weights fetch vgg16" in stderr and stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def load_image_named(name):
    from minidl.data import sample

    return sample(name)


def test_init_from_an_image_starts_there(model):
    grey = np.full((20, 30, 3), 128, np.uint8)
    _, from_grey = stylize("grace_hopper", "starry_night", weights=model, init=grey,
                           **dict(SMALL, iterations=1))
    _, from_content = stylize("grace_hopper", "starry_night", weights=model,
                              **dict(SMALL, iterations=1))
    assert from_grey["iterations"][0]["content"] > 0 == from_content["iterations"][0]["content"]


def test_average_pooling_also_lowers_the_loss():
    _, log = stylize("grace_hopper", "starry_night", weights="random", pooling="avg", **SMALL)
    assert log["iterations"][-1]["loss"] < log["iterations"][0]["loss"]
    assert log["args"]["pooling"] == "avg"
