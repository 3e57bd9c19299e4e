"""Decoders: shapes, save/load, what each upsampling does to a constant input, shipped files."""

from __future__ import annotations

import numpy as np
import pytest

from minidl.cli import main
from minidl.models.decoder import (
    LAYERS,
    Decoder,
    fit_to_layer,
    load_decoder,
    read_decoder_metadata,
    shipped_decoder_path,
)
from minidl.tensor import Tensor


@pytest.mark.parametrize("arch", ["resize", "transpose"])
@pytest.mark.parametrize("layer", LAYERS)
def test_output_is_the_image_size(layer, arch):
    decoder = Decoder(layer, arch, width=0.25)
    features = Tensor(np.random.default_rng(0).random((2, decoder.in_channels, 3, 5), np.float32))
    assert decoder(features).shape == (2, 3, 3 * 2**decoder.pools, 5 * 2**decoder.pools)


def test_bad_arguments():
    with pytest.raises(ValueError, match="layer must be one of"):
        Decoder("block5_conv1")
    with pytest.raises(ValueError, match="arch must be 'resize' or 'transpose'"):
        Decoder("block2_conv1", "deconv")
    with pytest.raises(ValueError, match=r"expected features of shape \(N, 128, h, w\)"):
        Decoder("block2_conv1")(Tensor(np.zeros((1, 64, 4, 4), np.float32)))


def test_save_load_round_trip_keeps_outputs_identical(tmp_path):
    decoder = Decoder("block2_conv1", "transpose", seed=4)
    # Weights that float16 stores exactly, so the file holds precisely this network.
    decoder.load_state_dict({k: v.astype(np.float16) for k, v in decoder.state_dict().items()})
    decoder.save(tmp_path / "d.h5", training={"steps": 7})
    loaded = load_decoder(tmp_path / "d.h5")
    x = Tensor(np.random.default_rng(1).random((1, 128, 4, 6), np.float32))
    assert np.array_equal(decoder(x).numpy(), loaded(x).numpy())
    assert (loaded.layer, loaded.arch, loaded.width) == ("block2_conv1", "transpose", 0.5)
    meta = read_decoder_metadata(tmp_path / "d.h5")
    assert meta["training"] == {"steps": 7} and loaded.training_settings == {"steps": 7}


def test_load_refuses_another_layer_and_other_files(tmp_path):
    Decoder("block2_conv1").save(tmp_path / "d.h5")
    with pytest.raises(ValueError, match="decodes block2_conv1, not block3_conv1 as asked"):
        load_decoder(tmp_path / "d.h5", layer="block3_conv1")
    with pytest.raises(FileNotFoundError, match="decoder file not found"):
        load_decoder(tmp_path / "missing.h5")
    from minidl.nn import Conv2d

    Conv2d(1, 1, 1).save(tmp_path / "conv.h5")
    with pytest.raises(ValueError, match="not a decoder file"):
        load_decoder(tmp_path / "conv.h5")


def _constant_response(arch: str) -> np.ndarray:
    """The image a decoder makes from features that are the same everywhere."""
    decoder = Decoder("block3_conv1", arch, width=0.25, seed=1)
    return decoder(Tensor(np.ones((1, 256, 8, 8), np.float32))).numpy()[0, 0]


def test_transpose_gives_a_checkerboard_and_resize_does_not():
    interior = slice(8, -8)  # away from the border, where padding differs
    resize = _constant_response("resize")[interior, interior]
    assert np.allclose(resize, resize[0, 0], rtol=1e-5, atol=1e-6)
    transpose = _constant_response("transpose")[interior, interior]
    # periodic: the pattern repeats every 4 pixels (two stride-2 steps) ...
    assert np.allclose(transpose[4:], transpose[:-4], atol=1e-5)
    assert np.allclose(transpose[:, 4:], transpose[:, :-4], atol=1e-5)
    # ... and is not constant
    assert transpose.max() - transpose.min() > 1e-3


def test_fit_to_layer_crops_to_a_multiple_of_the_poolings():
    image = np.zeros((171, 256, 3), np.uint8)
    assert fit_to_layer(image, 3).shape == (168, 256, 3)
    with pytest.raises(ValueError, match="too small"):
        fit_to_layer(np.zeros((5, 40, 3), np.uint8), 3)


@pytest.mark.parametrize("layer,arch", [("block3_conv1", "resize"), ("block4_conv1", "resize"),
                                        ("block3_conv1", "transpose")])
def test_shipped_decoders_load_and_say_how_they_were_trained(layer, arch):
    path = shipped_decoder_path(layer, arch)
    assert path.is_file(), path
    assert path.stat().st_size < 3_000_000
    decoder = load_decoder(path, layer=layer)
    assert decoder.arch == arch
    training = decoder.training_settings
    assert training["steps_done"] > 0 and training["held_out_ssim"] is not None


@pytest.mark.weights
def test_shipped_block3_decoder_reconstructs_a_held_out_photo():
    from minidl import metrics
    from minidl.models import vgg16
    from minidl.models.decoder import reconstruct
    from minidl.training import held_out_images
    from minidl.weights import find_weights

    try:
        weights = find_weights()
    except FileNotFoundError:
        pytest.skip("real VGG16 weights not found (MINIDL_WEIGHTS)")
    image = held_out_images()["kodim03"]
    decoded = reconstruct(vgg16(weights=weights), load_decoder("block3_conv1"), image)
    assert metrics.ssim(decoded, fit_to_layer(image, 2)) > 0.6


def test_decode_command(tmp_path, capsys):
    Decoder("block2_conv1").save(tmp_path / "d.h5")
    out = tmp_path / "out.png"
    assert main(["decode", "grace_hopper", "--decoder", str(tmp_path / "d.h5"), "--random",
                 "--size", "40", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "MSE" in text and "PSNR" in text and "SSIM" in text and out.is_file()


def test_decode_command_bad_decoder(tmp_path, capsys):
    assert main(["decode", "grace_hopper", "--decoder", str(tmp_path / "no.h5"), "--random",
                 "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minidl decode: error:") and "no.h5" in err and "\n" not in err


def test_load_refuses_a_declared_shape_that_does_not_fit_before_reading_it(tmp_path):
    """A decoder file is untrusted input: a dataset declaring a huge shape (gzip makes
    it tiny on disk) is refused from its metadata, before any value is read."""
    import h5py

    path = tmp_path / "bomb.h5"
    Decoder("block2_conv1", width=0.25).save(path)
    with h5py.File(path, "r+") as f:
        for name, shape, chunks in (("weight", (40_000_000, 128, 3, 3), (1, 128, 3, 3)),
                                    ("bias", (40_000_000,), (1024,))):
            del f[f"stage0.conv.{name}"]
            f.create_dataset(f"stage0.conv.{name}", shape=shape, dtype="float32",
                             compression="gzip", chunks=chunks)
    with pytest.raises(ValueError, match=r"stage0\.conv\.weight: expected shape .*"
                                         r"found \(40000000, 128, 3, 3\)"):
        load_decoder(path)
