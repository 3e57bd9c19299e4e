"""Tests for minidl.image and the sample images in minidl.data."""

import numpy as np
import pytest
from PIL import Image

from minidl.data import NAMES, sample, sample_path
from minidl.image import load_image, resize_image, save_image

RNG = np.random.default_rng(0)


def random_image(height, width):
    return RNG.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_png_round_trip_is_exact(tmp_path):
    img = random_image(17, 23)
    path = save_image(tmp_path / "deep" / "folder" / "x.png", img)  # parents are created
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (17, 23, 3)
    np.testing.assert_array_equal(out, img)


def test_float_images_are_clipped_and_scaled(tmp_path):
    img = np.array([[[0.0, 0.5, 1.0], [-0.2, 1.3, 0.25]]])  # shape (1, 2, 3)
    out = load_image(save_image(tmp_path / "f.png", img))
    np.testing.assert_array_equal(out, [[[0, 128, 255], [0, 255, 64]]])


def test_jpeg_round_trip_is_close(tmp_path):
    img = np.full((16, 16, 3), (200, 30, 90), np.uint8)
    out = load_image(save_image(tmp_path / "x.JPEG", img))
    assert np.abs(out.astype(int) - img).max() <= 3


def test_exif_rotation_is_applied(tmp_path):
    # Stored as 4 rows x 6 columns, red on the left; tag 6 says "rotate 90° clockwise to view".
    stored = np.zeros((4, 6, 3), np.uint8)
    stored[:, :3] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    Image.fromarray(stored).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    out = load_image(tmp_path / "rot.jpg")
    assert out.shape == (6, 4, 3)  # now portrait
    assert out[0, 0, 0] > 200 and out[-1, 0, 0] < 50  # the red half is now on top


def test_grayscale_becomes_rgb(tmp_path):
    gray = RNG.integers(0, 256, size=(5, 7), dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (5, 7, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque: kept
    rgba[0, 1] = (10, 20, 30, 0)  # transparent: white
    rgba[1, :] = (0, 0, 0, 128)  # half transparent black: mid grey
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 0], (10, 20, 30))
    np.testing.assert_array_equal(out[0, 1], (255, 255, 255))
    assert np.all(np.abs(out[1].astype(int) - 127) <= 1)


def test_palette_with_transparency_becomes_rgb(tmp_path):
    im = Image.new("P", (3, 3), 0)
    im.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    im.info["transparency"] = 0
    im.save(tmp_path / "p.gif", transparency=0)
    out = load_image(tmp_path / "p.gif")
    assert out.shape == (3, 3, 3)
    np.testing.assert_array_equal(out, 255)  # fully transparent: white


def test_resize_keeps_aspect_ratio(tmp_path):
    img = random_image(300, 200)
    assert resize_image(img, 60).shape == (60, 40, 3)
    assert resize_image(img, 600).shape == (600, 400, 3)  # enlarging works too
    assert resize_image(random_image(3, 1000), 10).shape == (1, 10, 3)  # never 0 pixels
    path = save_image(tmp_path / "big.png", img)
    assert load_image(path, max_side=150).shape == (150, 100, 3)
    with pytest.raises(TypeError, match="uint8"):
        resize_image(img.astype(np.float32), 10)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.png"):
        load_image(tmp_path / "nothere.png")
    (tmp_path / "bad.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(ValueError, match=r"cannot read image .*bad\.jpg"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match=r"out\.bmp.*unknown suffix '\.bmp'.*\.png"):
        save_image(tmp_path / "out.bmp", random_image(2, 2))
    with pytest.raises(ValueError, match=r"n\.png: it contains NaN"):
        save_image(tmp_path / "n.png", np.full((2, 2, 3), np.nan))


def test_truncated_jpeg_is_an_error(tmp_path):
    path = save_image(tmp_path / "full.jpg", random_image(64, 64))
    data = path.read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"half\.jpg"):
        load_image(tmp_path / "half.jpg")


@pytest.mark.parametrize(
    "name, shape",
    [
        ("starry_night", (640, 1024, 3)),
        ("the_scream", (1528, 1200, 3)),
        ("shipwreck", (662, 960, 3)),
        ("grace_hopper", (600, 512, 3)),
    ],
)
def test_samples(name, shape):
    assert sample_path(name).is_file()
    img = sample(name)
    assert img.shape == shape and img.dtype == np.uint8
    small = sample(name, max_side=128)
    assert max(small.shape[:2]) == 128


def test_unknown_sample_lists_names():
    with pytest.raises(ValueError, match="unknown sample image 'mona_lisa'.*starry_night"):
        sample("mona_lisa")
    assert set(NAMES) == {"starry_night", "the_scream", "shipwreck", "leger", "mondrian",
                          "red_chalk", "grace_hopper", *(f"kodim{k:02d}" for k in range(1, 21))}


def test_kodak_photos_are_bundled_names():
    img = sample("kodim03")
    assert max(img.shape[:2]) == 384 and img.dtype == np.uint8
    with pytest.raises(ValueError, match="kodim01 ... kodim20"):
        sample("kodim21")
