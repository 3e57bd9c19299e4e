"""Deconvnet, guided backprop and gradient projections (minidl.inversion.deconvnet)."""

from __future__ import annotations

import numpy as np
import pytest

from minidl.cli import main
from minidl.data import sample
from minidl.image import load_image
from minidl.inversion.deconvnet import (
    RULES,
    forward_trace,
    project,
    receptive_field,
    single_activation,
    strongest_signal,
    top_channels,
)
from minidl.models import vgg16
from minidl.models.vgg16 import preprocess


@pytest.fixture(scope="module")
def model():
    return vgg16(weights=None)


@pytest.fixture(scope="module")
def x():
    return preprocess(sample("grace_hopper", max_side=40))


def test_block1_conv1_projects_to_its_filter_times_its_activation(model, x, monkeypatch):
    # Exactly with the direct (im2col) convolution; Winograd's transforms round differently.
    monkeypatch.setenv("MINIDL_CONV", "im2col")
    channel = 7
    top, _ = forward_trace(model, x, "block1_conv1")
    signal, (i, j) = single_activation(top, channel)
    activation = float(signal.numpy().max())
    assert activation == top.numpy()[0, channel].max() > 0
    expected = np.zeros((3, x.shape[2] + 2, x.shape[3] + 2), np.float32)  # 1 px border
    expected[:, i:i + 3, j:j + 3] = activation * model.block1_conv1.weight.numpy()[channel]
    expected = expected[:, 1:-1, 1:-1]
    for rule in RULES:
        got = project(model, x, "block1_conv1", channel, rule=rule).numpy()[0]
        assert np.array_equal(got, expected), rule


def test_the_rules_agree_without_a_relu_and_differ_with_one(model, x):
    # block1_conv1: the only ReLU is the one the positive activation came through.
    first = [project(model, x, "block1_conv1", 3, rule).numpy() for rule in RULES]
    assert all(np.array_equal(first[0], p) for p in first[1:])
    deeper = {rule: project(model, x, "block2_conv2", 3, rule).numpy() for rule in RULES}
    assert not np.allclose(deeper["deconvnet"], deeper["gradient"])
    assert not np.allclose(deeper["guided"], deeper["gradient"])


def test_gradient_rule_is_autograds_input_gradient(model, x):
    signal, _ = strongest_signal(model, x, "block2_conv2", 5)
    xg = preprocess(sample("grace_hopper", max_side=40))
    xg.requires_grad_(True)
    (model.features(xg, "block2_conv2")["block2_conv2"] * signal).sum().backward()
    grad = xg.grad.numpy() if hasattr(xg.grad, "numpy") else np.asarray(xg.grad)
    assert np.allclose(project(model, x, "block2_conv2", 5, "gradient").numpy(), grad,
                       rtol=1e-5, atol=1e-7)


def test_top_channels_and_receptive_fields(model, x):
    feats = model.features(x, "block1_conv2")["block1_conv2"]
    top = top_channels(feats, 4)
    peaks = feats.numpy()[0].reshape(64, -1).max(axis=1)
    assert top == list(np.argsort(-peaks, kind="stable")[:4])
    assert receptive_field("block1_conv1", 5, 6) == (4, 5, 7, 8)
    top_, left, bottom, right = receptive_field("block5_conv3", 0, 0)
    assert bottom - top_ == 196 and right - left == 196


def test_command_draws_the_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["deconvnet", "grace_hopper", "--layer", "block2_conv1", "--top", "2",
                 "--random", "--size", "32", "--rule", "guided", "-o", str(out)]) == 0
    assert load_image(out).shape[1] > 200
    assert capsys.readouterr().out.count("channel") == 2


@pytest.mark.parametrize("argv, message", [
    (["--layer", "block7_conv1"], "unknown layer 'block7_conv1'"),
    (["--channels", "64"], "block1_conv2 has channels 0..63"),
    (["--size", "8", "--layer", "block5_conv1"], "too small for block5_conv1"),
])
def test_bad_input_is_one_line_exit_2(argv, message, tmp_path, capsys):
    argv = argv if "--layer" in argv else [*argv, "--layer", "block1_conv2"]
    if "--size" not in argv:
        argv = [*argv, "--size", "32"]
    status = main(["deconvnet", "grace_hopper", *argv, "--random", "-o", str(tmp_path / "o.png")])
    stderr = capsys.readouterr().err
    assert status == 2 and message in stderr and stderr.count("\n") == 1, stderr
    assert list(tmp_path.iterdir()) == []
