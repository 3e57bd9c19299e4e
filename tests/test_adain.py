"""AdaIN style transfer: the re-normalised features, alpha, blending, colours, the log."""

from __future__ import annotations

import numpy as np
import pytest

from minidl.models import vgg16
from minidl.models.decoder import Decoder, reconstruct
from minidl.style.adain import adain_target, stylize
from minidl.style.blend import blend_weights
from minidl.tensor import Tensor


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("adain") / "b1.h5"
    Decoder("block1_conv1", seed=2).save(path, dtype=np.float32)
    return path


def _image(seed, h=32, w=40):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8)


def _stats(f):
    return f.mean(axis=(2, 3)), f.std(axis=(2, 3))


def test_target_has_the_style_channel_means_and_stds():
    rng = np.random.default_rng(0)
    content = Tensor(rng.normal(3, 10, (1, 8, 6, 7)))
    style = Tensor(rng.normal(-2, 20, (1, 8, 5, 9)) * rng.random((1, 8, 1, 1)))
    target = adain_target(content, [style], [1.0], alpha=1.0).numpy()
    for got, want in zip(_stats(target), _stats(style.numpy())):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_alpha_mixes_with_the_content_features():
    rng = np.random.default_rng(1)
    content, style = Tensor(rng.normal(size=(1, 4, 5, 5))), Tensor(rng.normal(size=(1, 4, 5, 5)))
    assert np.array_equal(adain_target(content, [style], [1.0], 0.0).numpy(), content.numpy())
    half = adain_target(content, [style], [1.0], 0.5).numpy()
    full = adain_target(content, [style], [1.0], 1.0).numpy()
    np.testing.assert_allclose(half, 0.5 * full + 0.5 * content.numpy(), atol=1e-12)


def test_blend_interpolates_the_targets():
    rng = np.random.default_rng(2)
    c, s1, s2 = (Tensor(rng.normal(size=(1, 4, 5, 5))) for _ in range(3))
    mixed = adain_target(c, [s1, s2], blend_weights([3, 1], 2), 1.0).numpy()
    one, two = (adain_target(c, [s], [1.0], 1.0).numpy() for s in (s1, s2))
    np.testing.assert_allclose(mixed, 0.75 * one + 0.25 * two, atol=1e-12)
    with pytest.raises(ValueError, match=r"got 1 weight\(s\) for 2 style image\(s\)"):
        blend_weights([1], 2)
    with pytest.raises(ValueError, match="positive sum"):
        blend_weights([0, 0], 2)


def test_alpha_zero_returns_the_content_reconstruction(decoder_file):
    content = _image(0)
    image, log = stylize(content, _image(1), alpha=0.0, decoder=decoder_file, weights="random",
                         size=40)
    from minidl.models.decoder import load_decoder

    expected = reconstruct(vgg16(weights=None), load_decoder(decoder_file), content)
    assert np.array_equal(image, expected)
    assert {"command", "args", "device", "iterations", "final", "seconds",
            "seconds_per_iteration", "peak_rss_mb"} <= set(log)
    assert log["seconds"] > 0 and log["final"]["layer"] == "block1_conv1"


def test_styles_and_colours(decoder_file):
    content = _image(0)
    one, _ = stylize(content, _image(1), decoder=decoder_file, weights="random", size=40)
    same, _ = stylize(content, [_image(1), _image(1)], style_blend_weights=[2, 5],
                      decoder=decoder_file, weights="random", size=40)
    np.testing.assert_allclose(one.astype(int), same.astype(int), atol=1)
    kept, _ = stylize(content, _image(1), decoder=decoder_file, weights="random", size=40,
                      preserve_color=True)
    from minidl.style.colors import match_luminance

    # the stylised luminance with the content's chrominance
    assert np.array_equal(kept, match_luminance(one, content[:32, :40]))


def test_bad_arguments(decoder_file):
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got 1.5"):
        stylize(_image(0), _image(1), alpha=1.5, decoder=decoder_file, weights="random")
    with pytest.raises(ValueError, match="at least one style"):
        stylize(_image(0), [], decoder=decoder_file, weights="random")
    with pytest.raises(ValueError, match="not_a_file.png"):
        stylize("not_a_file.png", _image(1), decoder=decoder_file, weights="random")


@pytest.mark.weights
def test_shipped_decoder_stylises_with_real_weights():
    from minidl.weights import find_weights

    try:
        find_weights()
    except FileNotFoundError:
        pytest.skip("real VGG16 weights not found (MINIDL_WEIGHTS)")
    image, _log = stylize("grace_hopper", "starry_night", size=128)
    assert image.shape[2] == 3 and max(image.shape[:2]) == 128
    assert image.std() > 10  # a picture, not a flat colour


def test_default_decoder_is_the_shipped_adain_one():
    from minidl.models.decoder import load_decoder, shipped_decoder_path
    from minidl.style.adain import default_decoder

    assert default_decoder() == shipped_decoder_path("block4_conv1", adain=True)
    decoder = load_decoder(default_decoder(), layer="block4_conv1")
    assert decoder.training_settings["style_weight"] > 0 and decoder.arch == "resize"
