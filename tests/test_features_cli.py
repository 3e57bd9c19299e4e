"""Tests for ``minidl features``: run through ``minidl.cli.main`` on tiny images.

A random network (``--random``) or a small synthetic weight file stands in for the
real VGG16 weights, and every output goes to pytest's ``tmp_path``.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from minidl.cli import main
from minidl.features import activation_stats, strongest_channels
from minidl.image import save_image
from minidl.models import vgg16
from minidl.weights import download


@pytest.fixture
def image_file(tmp_path):
    rng = np.random.default_rng(0)
    return save_image(tmp_path / "photo.png", rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))


def run(capsys, *argv):
    """Run the command; return (exit status, stdout, stderr)."""
    status = main(["features", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_random_network_writes_one_png_per_layer(tmp_path, image_file, capsys):
    out = tmp_path / "out"
    status, stdout, _ = run(capsys, image_file, "--random", "--size", 32, "--out", out,
                            "--layers", "block1_conv1,block2_pool", "--maps", 4)  # fmt: skip
    assert status == 0
    assert "device:  cpu" in stdout
    assert "24x32 pixels" in stdout  # 30x40 resized so the longer side is 32
    assert "random" in stdout
    assert "(1, 64, 32, 24)" in stdout and "(1, 128, 8, 6)" in stdout
    pngs = sorted(p.name for p in out.iterdir())
    assert pngs == ["features_block1_conv1.png", "features_block2_pool.png"]
    for name in pngs:
        assert f"wrote {out / name}" in stdout
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 100


def test_rerun_replaces_only_its_own_files(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "notes.png"
    keep.write_bytes(b"the user's file")
    args = ("grace_hopper", "--random", "--size", 32, "--out", out, "--layers", "block1_pool")
    assert run(capsys, *args)[0] == 0
    status, stdout, _ = run(capsys, *args)
    assert status == 0
    assert "replaced the file from an earlier run" in stdout
    assert keep.read_bytes() == b"the user's file"
    assert sorted(p.name for p in out.iterdir()) == ["features_block1_pool.png", "notes.png"]


def test_weights_file_and_stats(tmp_path, image_file, capsys):
    path = vgg16(seed=7).save(tmp_path / "tiny_vgg.h5")
    status, stdout, _ = run(capsys, image_file, "--weights", path, "--size", 32,
                            "--out", tmp_path, "--layers", "block1_conv2", "--maps", 3)  # fmt: skip
    assert status == 0
    assert f"weights: {path}" in stdout
    row = next(line for line in stdout.splitlines() if line.startswith("block1_conv2 "))
    mean, std, maximum, zeros = row.split()[-4:]
    assert float(maximum) >= float(mean) >= 0 and float(std) >= 0
    assert zeros.endswith("%") and 0 <= float(zeros[:-1]) <= 100


def test_no_weights_found_is_an_error(tmp_path, image_file, capsys, monkeypatch):
    monkeypatch.delenv("MINIDL_WEIGHTS", raising=False)
    monkeypatch.setattr(download, "PROJECT_WEIGHTS_DIR", tmp_path / "no_weights")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    status, _, stderr = run(capsys, image_file, "--out", tmp_path / "out")
    assert status == 1
    assert "no vgg16 weights found" in stderr and "--random" in stderr
    assert not (tmp_path / "out").exists()


def test_bad_arguments(tmp_path, image_file, capsys):
    status, _, stderr = run(capsys, image_file, "--random", "--layers", "block1_conv1,fc1")
    assert status == 1 and "fc1" in stderr and "block5_pool" in stderr
    status, _, stderr = run(capsys, tmp_path / "missing.jpg", "--random")
    assert status == 1 and "not a bundled image name" in stderr and "grace_hopper" in stderr
    status, _, stderr = run(capsys, image_file, "--random", "--maps", 0)
    assert status == 1 and "--maps" in stderr
    status, _, stderr = run(capsys, image_file, "--random", "--size", 16,
                            "--layers", "block5_pool", "--out", tmp_path)  # fmt: skip
    assert status == 1 and "too small" in stderr
    status, _, stderr = run(capsys, image_file, "--weights", tmp_path / "none.h5")
    assert status == 1 and "none.h5" in stderr
    with pytest.raises(SystemExit):  # argparse: --weights and --random exclude each other
        main(["features", str(image_file), "--random", "--weights", "w.h5"])


def test_helpers():
    maps = np.zeros((4, 2, 2), np.float32)
    maps[2] = 5
    maps[0] = 1
    maps[3, 0, 0] = 1  # mean 0.25
    assert strongest_channels(maps, 3).tolist() == [2, 0, 3]
    assert strongest_channels(maps, 10).tolist() == [2, 0, 3, 1]
    stats = activation_stats(maps)
    assert stats["max"] == 5 and stats["zeros"] == pytest.approx(7 / 16)
    assert stats["mean"] == pytest.approx(maps.mean())


def test_an_unusable_device_is_a_message_not_a_traceback(tmp_path, image_file, capsys):
    from minidl.backends.cuda import cuda_available

    if cuda_available()[0]:
        pytest.skip("this machine has a usable GPU")
    status, _, stderr = run(capsys, image_file, "--random", "--device", "cuda", "--out", tmp_path)
    assert status == 1 and "CuPy" in stderr and "Traceback" not in stderr
