"""Training decoders: the loss goes down, resume is bit for bit, bad inputs are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from minidl.cli import main
from minidl.image import save_image
from minidl.models import vgg16
from minidl.training import Settings, Trainer, TrainingError, load_image_folder, random_crops


@pytest.fixture(scope="module")
def vgg():
    return vgg16(weights=None)


def _images(count=3, size=40, seed=0):
    rng = np.random.default_rng(seed)
    # smooth random images: a decoder can learn them in a few steps
    small = rng.integers(0, 256, (count, size // 8, size // 8, 3)).astype(np.float32)
    return [np.kron(im, np.ones((8, 8, 1))).astype(np.uint8) for im in small]


def _tiny(**changes) -> Settings:
    base = {"layer": "block1_conv1", "size": 32, "batch": 2, "steps": 6, "lr": 1e-2, "seed": 3,
                "checkpoint_every": 2, "eval_every": 2, "held_out_size": 48}
    return Settings(**{**base, **changes})


def test_training_lowers_the_loss(vgg):
    trainer = Trainer(_tiny(), vgg, images=_images())
    fixed = random_crops(trainer.images, np.random.default_rng(9), 32, 2)
    before = trainer.losses(fixed)["loss"].item()
    for _ in range(6):
        trainer.step()
    after = trainer.losses(fixed)["loss"].item()
    assert after < 0.8 * before


def test_resume_continues_bit_for_bit(vgg, tmp_path):
    images = _images()
    straight = Trainer(_tiny(), vgg, images=images)
    for _ in range(4):
        straight.step()
    first = Trainer(_tiny(), vgg, images=images)
    for _ in range(2):
        first.step()
    first.save_checkpoint(tmp_path / "c.ckpt.h5")
    resumed = Trainer(_tiny(), vgg, images=images)
    resumed.load_checkpoint(tmp_path / "c.ckpt.h5")
    assert resumed.state.step == 2
    for _ in range(2):
        resumed.step()
    for key, value in straight.decoder.state_dict().items():
        assert np.array_equal(value, resumed.decoder.state_dict()[key]), key
    assert [r["loss"] for r in straight.state.history] == [r["loss"] for r in resumed.state.history]


def test_adain_training_step_runs_and_lowers_its_loss(vgg):
    settings = _tiny(layer="block2_conv1", style_images="in memory", style_weight=1.0)
    trainer = Trainer(settings, vgg, images=_images(), style_images=_images(seed=5))
    rng = np.random.default_rng(1)
    fixed = (random_crops(trainer.images, rng, 32, 2), random_crops(trainer.style_images, rng, 32, 2))
    before = trainer.losses(*fixed)
    assert set(before) == {"content", "style", "loss"}
    for _ in range(6):
        trainer.step()
    assert trainer.losses(*fixed)["loss"].item() < before["loss"].item()


# ------------------------------------------------------------------ the command


def _write_folder(folder: Path, images) -> Path:
    folder.mkdir()
    for i, image in enumerate(images):
        save_image(folder / f"im{i}.png", image)
    return folder


def _args(folder, out, *extra):
    return ["train-decoder", "--layer", "block1_conv1", "--random", "--images", str(folder),
            "--size", "32", "--batch", "2", "--checkpoint-every", "2", "--eval-every", "2",
            "--held-out-size", "48", "--out", str(out), "--quiet", *extra]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_command_trains_resumes_and_writes_its_files(tmp_path, capsys):
    folder = _write_folder(tmp_path / "imgs", _images())
    out = tmp_path / "dec.h5"
    assert main(_args(folder, out, "--steps", "2")) == 0
    assert main(_args(folder, out, "--steps", "4", "--resume")) == 0
    text = capsys.readouterr().out
    assert "resumed" in text and "after 4 steps" in text and "SSIM" in text
    for name in ("dec.h5", "dec.ckpt.h5", "dec_curve.json", "dec_heldout.png",
                 "dec_ssim_vs_steps.png"):
        assert (tmp_path / name).is_file(), name
    curve = json.loads((tmp_path / "dec_curve.json").read_text())["curve"]
    assert [p["step"] for p in curve] == [2, 4]
    from minidl.models.decoder import read_decoder_metadata

    meta = read_decoder_metadata(out)
    assert meta["layer"] == "block1_conv1" and meta["training"]["steps_done"] == 4


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_empty_and_unreadable_folders_are_explained(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(_args(empty, tmp_path / "a.h5")) == 2
    err = _error(capsys)
    assert "no usable images" in err and "found 0 file(s)" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.txt").write_text("hello")
    (bad / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(_args(bad, tmp_path / "a.h5")) == 2
    err = _error(capsys)
    assert "found 2 file(s)" in err and "notes.txt (not an image suffix)" in err
    assert "broken.jpg (unreadable" in err
    assert not (tmp_path / "a.h5").exists()


def test_empty_folder_message_counts_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrainingError, match=r"no usable images in .*empty: found 0 file\(s\)"):
        load_image_folder(empty)


def test_crops_larger_than_the_images(tmp_path, capsys):
    folder = _write_folder(tmp_path / "imgs", _images(size=24))
    assert main(_args(folder, tmp_path / "a.h5")) == 2
    assert "--size 32: crops are larger than an image" in _error(capsys)


def test_resume_without_checkpoint(tmp_path, capsys):
    folder = _write_folder(tmp_path / "imgs", _images())
    assert main(_args(folder, tmp_path / "a.h5", "--resume")) == 2
    assert "--resume: no checkpoint at" in _error(capsys)


def test_checkpoint_of_another_architecture_is_refused_and_kept(tmp_path, capsys):
    folder = _write_folder(tmp_path / "imgs", _images())
    out = tmp_path / "dec.h5"
    assert main(_args(folder, out, "--steps", "2")) == 0
    checkpoint = tmp_path / "dec.ckpt.h5"
    digest = _digest(checkpoint)
    capsys.readouterr()
    assert main(_args(folder, out, "--steps", "4", "--resume", "--arch", "transpose")) == 2
    assert "is for a block1_conv1 resize decoder" in _error(capsys)
    assert main(_args(folder, out, "--steps", "4")) == 2  # a new run over the checkpoint
    assert "exists: continue it with --resume" in _error(capsys)
    assert _digest(checkpoint) == digest


def test_init_decoder_of_another_layer(tmp_path, capsys):
    from minidl.models.decoder import Decoder

    Decoder("block2_conv1").save(tmp_path / "b2.h5")
    folder = _write_folder(tmp_path / "imgs", _images())
    assert main(_args(folder, tmp_path / "a.h5", "--init", str(tmp_path / "b2.h5"))) == 2
    assert "decodes block2_conv1, not block1_conv1" in _error(capsys)


def test_command_trains_an_adain_decoder(tmp_path):
    folder = _write_folder(tmp_path / "imgs", _images())
    styles = _write_folder(tmp_path / "styles", _images(seed=7))
    out = tmp_path / "adain.h5"
    assert main(_args(folder, out, "--steps", "2", "--style-images", str(styles),
                      "--style-weight", "3")) == 0
    from minidl.models.decoder import read_decoder_metadata

    training = read_decoder_metadata(out)["training"]
    assert training["style_weight"] == 3 and training["style_images"] == str(styles)
