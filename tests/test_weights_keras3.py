"""Keras 3 files as Keras really writes them: groups named conv2d, conv2d_1, ...,
conv2d_12 (h5py lists conv2d_10 before conv2d_2), with or without the layer's name
in ``vars.attrs["name"]`` (Keras >= 3.6), alone or inside a ``.keras`` archive."""

import io
import json
import zipfile
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from test_weights import (
    Declared,
    assert_state_equal,
    conv,
    dense,
    expected_conv_state,
    write_keras3,
)

from minidl.cli import main
from minidl.models import vgg16
from minidl.models.vgg16 import BLOCK_CHANNELS
from minidl.weights import WeightsError, inspect_weights, load_weights, read_weights, reader

# Twelve convolutions in four blocks, so that the groups conv2d_10 and conv2d_11 exist.
DEEP = {"input_layer": []}
for _b in range(1, 5):
    for _i in range(1, 4):
        DEEP[f"block{_b}_conv{_i}"] = conv(1, 1, 2, 2)
    DEEP[f"block{_b}_pool"] = []
DEEP_WITH_TOP = {**DEEP, "flatten": [], "fc1": dense(8, 4), "predictions": dense(4, 3)}
CONVS = [name for name, arrays in DEEP.items() if arrays]  # network order


def shapes(layers):
    """The model's ``{key: shape}`` for a network of Keras conv layers, in order."""
    return {k: v.shape for k, v in expected_conv_state(layers).items()}


def test_groups_are_named_by_class_and_listed_alphabetically_by_h5py(tmp_path):
    path = write_keras3(tmp_path / "deep.weights.h5", DEEP)
    with h5py.File(path) as f:
        groups = list(f["layers"])
        assert groups.index("conv2d_10") < groups.index("conv2d_2")  # the trap
        assert f["layers/conv2d_10/vars"].attrs["name"] == "block4_conv2"
        assert f["vars"].attrs["name"] == "vgg16" and len(f["layers/input_layer/vars"]) == 0


def test_named_file_is_read_in_network_order(tmp_path):
    info = read_weights(write_keras3(tmp_path / "deep.weights.h5", DEEP_WITH_TOP))
    assert_state_equal(info.state_dict, expected_conv_state(DEEP))  # keys in network order too
    assert info.ignored == ["fc1", "predictions"] and info.notes == []


def test_unnamed_file_maps_conv2d_k_to_the_kth_convolution(tmp_path):
    path = write_keras3(tmp_path / "old.weights.h5", DEEP, names=False)
    state = load_weights(path, expected=shapes(DEEP))  # the model names the convolutions
    assert_state_equal(state, expected_conv_state(DEEP))
    np.testing.assert_array_equal(state["block4_conv2.bias"], DEEP["block4_conv2"][1])


def test_unnamed_file_without_a_model_keeps_group_names_in_numeric_order(tmp_path):
    info = read_weights(write_keras3(tmp_path / "old.weights.h5", DEEP, names=False))
    groups = ["conv2d"] + [f"conv2d_{k}" for k in range(1, 12)]
    assert list(info.state_dict) == [f"{g}.{p}" for g in groups for p in ("weight", "bias")]
    np.testing.assert_array_equal(info.state_dict["conv2d_10.bias"], DEEP["block4_conv2"][1])
    assert "does not store layer names" in info.notes[0]


def test_unnamed_file_with_a_different_number_of_convolutions(tmp_path):
    path = write_keras3(tmp_path / "old.weights.h5", DEEP, names=False)
    fewer = shapes({k: v for k, v in DEEP.items() if k != "block4_conv3"})
    with pytest.raises(
        WeightsError,
        match=r"old\.weights\.h5: the file has 12 convolutions "
        r"\(conv2d \.\.\. conv2d_11\).*model has 11",
    ):
        read_weights(path, expected=fewer)


def test_unnamed_file_with_wrong_shapes_names_the_layer(tmp_path):
    layers = dict(DEEP, block2_conv1=conv(3, 3, 2, 2))
    path = write_keras3(tmp_path / "old.weights.h5", layers, names=False)
    with pytest.raises(
        WeightsError,
        match=r"block2_conv1\.weight: expected shape \(2, 2, 1, 1\), "
        r"found \(2, 2, 3, 3\)",
    ):
        read_weights(path, expected=shapes(DEEP))


def test_cli_info_lists_network_order_and_warns_about_missing_names(tmp_path, capsys):
    path = write_keras3(tmp_path / "old.weights.h5", DEEP, names=False)
    assert main(["weights", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.index("conv2d_2.weight") < out.index("conv2d_10.weight")
    assert "note: this file does not store layer names" in out
    assert main(["weights", "info", str(write_keras3(tmp_path / "new.weights.h5", DEEP))]) == 0
    out = capsys.readouterr().out
    assert "Keras 3 .weights.h5" in out and "note:" not in out
    assert [ln.split()[0] for ln in out.splitlines() if ln.startswith("  ")] == [
        f"{c}.{p}" for c in CONVS for p in ("weight", "bias")
    ]


def vgg16_layers(names_fill):
    """VGG16's conv layers as Keras holds them, each array declared and filled with a
    constant (no data written, so the file is tiny); ``names_fill`` gives the fill."""
    layers, c_in = {"input_layer": []}, 3
    for b, channels in enumerate(BLOCK_CHANNELS, start=1):
        for i, c_out in enumerate(channels, start=1):
            fill = names_fill(f"block{b}_conv{i}")
            layers[f"block{b}_conv{i}"] = [Declared((3, 3, c_in, c_out), fill),
                                           Declared((c_out,), -fill)]  # fmt: skip
            c_in = c_out
        layers[f"block{b}_pool"] = []
    return layers


@pytest.mark.parametrize("names", [True, False], ids=["keras>=3.6", "keras<3.6"])
def test_vgg16_loads_a_keras3_file(tmp_path, names):
    order = {}
    layers = vgg16_layers(lambda name: order.setdefault(name, len(order) + 1))
    path = write_keras3(tmp_path / "vgg16.weights.h5", layers, names=names)
    model = vgg16(weights=path)
    assert float(model.block1_conv1.weight.numpy()[0, 0, 0, 0]) == 1
    assert float(model.block4_conv2.weight.numpy()[0, 0, 0, 0]) == order["block4_conv2"] == 9
    assert float(model.block5_conv3.bias.numpy()[0]) == -13


def keras_archive(path, weights_h5: bytes, with_weights=True, compression=zipfile.ZIP_STORED):
    """A ``.keras`` zip as Keras 3's ``model.save`` writes it (saving_lib._save_model_to_fileobj):
    metadata.json, config.json, and the weights as model.weights.h5, stored uncompressed."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.6.0",
                                                 "date_saved": "2024-10-03@12:00:00"}))  # fmt: skip
        zf.writestr("config.json", json.dumps({"class_name": "Functional", "config": {}}))
        if with_weights:
            zf.writestr("model.weights.h5", weights_h5)
    return path


def h5_bytes(tmp_path, layers, names=True):
    return write_keras3(tmp_path / "inner.weights.h5", layers, names=names).read_bytes()


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_keras_archive_is_read(tmp_path, compression):
    weights_h5 = h5_bytes(tmp_path, DEEP_WITH_TOP)
    path = keras_archive(tmp_path / "model.keras", weights_h5, compression=compression)
    info = read_weights(path)
    assert info.layout == "keras3-archive"
    assert info.metadata["keras_version"] == "3.6.0"
    assert_state_equal(info.state_dict, expected_conv_state(DEEP))
    assert info.ignored == ["fc1", "predictions"]
    assert inspect_weights(path).arrays["block4_conv2.weight"].shape == (2, 2, 1, 1)


def test_keras_archive_unnamed_with_model(tmp_path):
    path = keras_archive(tmp_path / "model.keras", h5_bytes(tmp_path, DEEP, names=False))
    assert_state_equal(load_weights(path, expected=shapes(DEEP)), expected_conv_state(DEEP))


def test_cli_info_on_keras_archive(tmp_path, capsys):
    path = keras_archive(tmp_path / "model.keras", h5_bytes(tmp_path, DEEP))
    assert main(["weights", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "model.weights.h5 of a Keras 3 .keras archive" in out and '"keras_version": "3.6.0"' in out
    )


def test_zip_without_weights_and_truncated_archive(tmp_path):
    path = keras_archive(tmp_path / "empty.keras", b"", with_weights=False)
    with pytest.raises(
        WeightsError,
        match=r"empty\.keras: a zip archive without model\.weights\.h5 "
        r"\(it holds metadata\.json, config\.json\)",
    ):
        read_weights(path)
    whole = keras_archive(io.BytesIO(), h5_bytes(tmp_path, DEEP)).getvalue()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(WeightsError, match=r"cut\.keras: not an HDF5 file or a \.keras archive"):
        read_weights(cut)


def test_compressed_archive_that_would_not_fit_on_disk(tmp_path, monkeypatch):
    weights_h5 = h5_bytes(tmp_path, DEEP)
    path = keras_archive(tmp_path / "m.keras", weights_h5, compression=zipfile.ZIP_DEFLATED)
    monkeypatch.setattr(reader.shutil, "disk_usage", lambda _: SimpleNamespace(free=9))
    with pytest.raises(
        WeightsError,
        match=r"m\.keras: model\.weights\.h5 is compressed and would "
        rf"take {len(weights_h5):,} bytes unpacked; only 9",
    ):
        read_weights(path)


def test_nested_model_is_reported_not_read(tmp_path):
    path = write_keras3(tmp_path / "outer.weights.h5", DEEP)
    with h5py.File(path, "a") as f:  # a model used as a layer: its own layers/ inside
        inner = f.create_group("layers/functional")
        inner.create_group("vars").attrs["name"] = "backbone"
        f.copy(f["layers/conv2d"], inner, "layers/conv2d")
        f.create_group("layers/empty")  # nothing in it: nothing to report
    info = read_weights(path)
    assert info.ignored == ["functional"]
    assert_state_equal(info.state_dict, expected_conv_state(DEEP))
