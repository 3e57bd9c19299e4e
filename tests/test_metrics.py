"""Image metrics and the ``minidl compare`` command."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minidl import metrics
from minidl.cli import main
from minidl.image import save_image
from minidl.models import vgg16


def _image(seed, h=24, w=30):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8)


def test_mse_and_psnr_by_hand():
    a = np.zeros((12, 12, 3), np.uint8)
    b = np.full((12, 12, 3), 51, np.uint8)  # 0.2 on the 0-1 scale
    assert metrics.mse(a, b) == pytest.approx(0.04)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(1 / 0.04))
    assert metrics.psnr(a, a) == math.inf


def test_ssim_is_one_for_equal_images_and_uses_luminance():
    a = _image(0)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    # swapping colours but keeping the luminance keeps SSIM at 1
    gray = np.repeat(_image(1)[..., :1], 3, axis=2)
    assert metrics.ssim(gray, gray) == pytest.approx(1.0)
    noisy = np.clip(a + np.random.default_rng(2).normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert 0 < metrics.ssim(a, noisy) < 0.9


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"same shape, got \(24, 30, 3\) and \(24, 31, 3\)"):
        metrics.mse(_image(0), _image(1, w=31))
    with pytest.raises(TypeError, match="uint8"):
        metrics.ssim(_image(0).astype(np.float32), _image(0))
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        metrics.ssim(_image(0, 8, 8), _image(0, 8, 8))


def test_vgg_distances_are_zero_for_the_same_image():
    model = vgg16(weights=None)
    a, b = _image(0, 32, 32), _image(1, 32, 32)
    assert metrics.gram_distance(a, a, model) == 0
    assert metrics.gram_distance(a, b, model) > 0
    assert metrics.gram_distance(a, _image(2, 40, 48), model) > 0  # any size
    assert metrics.content_distance(a, a, model) == 0
    assert metrics.content_distance(a, b, model) > 0


def test_compare_command(tmp_path, capsys):
    paths = []
    for i, (h, w) in enumerate([(32, 32), (32, 32), (48, 40), (32, 40)]):
        paths.append(tmp_path / f"{i}.png")
        save_image(paths[-1], _image(i, h, w))
    a, b, style, other = map(str, paths)
    assert main(["compare", a, b, "--style", style, "--content", style, "--random"]) == 0
    text = capsys.readouterr().out
    assert "MSE" in text and "PSNR" in text and "SSIM" in text
    assert "Gram distance to style" in text and "content distance (block4_conv2)" in text
    assert main(["compare", a, other]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minidl compare: error:") and "32x32" in err and "40x32" in err
