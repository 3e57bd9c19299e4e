"""A weight file is untrusted input: every declared shape and dtype is checked
before any value is read, so a tiny file that claims gigabytes is refused at once.

The hostile files are made with h5py: a gzip-compressed dataset declared with a
huge shape and never written holds no data, so it costs a few kilobytes on disk.
"""

import shutil
import time
import tracemalloc

import h5py
import numpy as np
import pytest
from test_weights import Declared, write_keras2, write_keras3

from minidl.cli import main
from minidl.models import vgg16
from minidl.models.vgg16 import BLOCK_CHANNELS
from minidl.weights import WeightsError, find_weights, inspect_weights, read_weights

HUGE = (3, 3, 3, 38_400_000)  # the file: 4 GB of float32 behind block1_conv1


def vgg16_keras_layers(kernel1=None, bias1=None):
    """VGG16 as Keras holds it, every array declared (zeros, nothing written);
    block1_conv1's kernel and bias may be replaced."""
    layers, c_in = {"input_1": []}, 3
    for b, channels in enumerate(BLOCK_CHANNELS, start=1):
        for i, c_out in enumerate(channels, start=1):
            layers[f"block{b}_conv{i}"] = [Declared((3, 3, c_in, c_out)), Declared((c_out,))]
            c_in = c_out
        layers[f"block{b}_pool"] = []
    layers["block1_conv1"] = [kernel1 or layers["block1_conv1"][0], bias1 or Declared((64,))]
    return layers


def vgg16_shapes():
    """What minidl's VGG16 expects, key -> shape, without building the network."""
    shapes, c_in = {}, 3
    for b, channels in enumerate(BLOCK_CHANNELS, start=1):
        for i, c_out in enumerate(channels, start=1):
            shapes[f"block{b}_conv{i}.weight"] = (c_out, c_in, 3, 3)
            shapes[f"block{b}_conv{i}.bias"] = (c_out,)
            c_in = c_out
    return shapes


@pytest.fixture
def bomb(tmp_path):
    """The issue's attack: block1_conv1's kernel declares HUGE, gzip-compressed."""
    kernel = Declared(HUGE, compression="gzip")
    path = write_keras2(tmp_path / "bomb.h5", vgg16_keras_layers(kernel))
    assert path.stat().st_size < 200_000  # tiny on disk, 4 GB declared
    return path


def refused_quickly(call):
    """Run ``call``, which must raise WeightsError; return the message and check
    that it took under a second and allocated under 4 MB of Python/NumPy memory."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(WeightsError) as error:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 4 << 20, f"allocated {peak:,} bytes"
    return str(error.value)


def test_huge_declared_kernel_is_refused_against_the_model(bomb):
    message = refused_quickly(lambda: read_weights(bomb, expected=vgg16_shapes()))
    assert "bomb.h5" in message
    assert "block1_conv1.weight: expected shape (64, 3, 3, 3), found (38400000, 3, 3, 3)" in message


def test_vgg16_refuses_the_bomb(bomb):
    with pytest.raises(
        WeightsError,
        match=r"bomb\.h5: weights do not fit the model\n"
        r"shape mismatch:\n  block1_conv1\.weight: "
        r"expected shape \(64, 3, 3, 3\), found \(38400000",
    ):
        vgg16(weights=bomb)


def test_without_a_model_the_kernel_must_agree_with_its_bias(bomb):
    message = refused_quickly(lambda: read_weights(bomb))
    assert message.startswith(f"{bomb}: layer 'block1_conv1': kernel /block1_conv1/")
    assert (
        "(38400000, 3, 3, 3)" in message and "bias" in message and "expected (38400000,)" in message
    )
    refused_quickly(lambda: inspect_weights(bomb))


def test_info_describes_a_huge_file_without_reading_it(tmp_path, capsys):
    huge = vgg16_keras_layers(Declared(HUGE, compression="gzip"),
                              Declared(HUGE[3:], compression="gzip"))  # fmt: skip
    path = write_keras2(tmp_path / "huge.h5", huge)
    tracemalloc.start()
    try:
        assert main(["weights", "info", str(path)]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    assert "(38400000, 3, 3, 3)" in capsys.readouterr().out


@pytest.mark.parametrize("dtype, fill", [("int32", 0), ("S4", b"")])
def test_keras_arrays_must_be_floating_point(tmp_path, dtype, fill):
    layers = vgg16_keras_layers(Declared((3, 3, 3, 64), fill=fill, dtype=dtype))
    with pytest.raises(
        WeightsError,
        match=r"w\.h5: 'block1_conv1\.weight' \(/block1_conv1/"
        r"block1_conv1_W_1:0\) has dtype .*; expected floating",
    ):
        read_weights(write_keras2(tmp_path / "w.h5", layers), expected=vgg16_shapes())


def test_keras3_huge_kernel_is_refused(tmp_path):
    layers = vgg16_keras_layers(Declared(HUGE, compression="gzip"))
    path = write_keras3(tmp_path / "bomb.weights.h5", layers, names=False)
    message = refused_quickly(lambda: read_weights(path, expected=vgg16_shapes()))
    assert "block1_conv1.weight: expected shape (64, 3, 3, 3), found (38400000, 3, 3, 3)" in message


def test_a_group_where_a_dataset_belongs(tmp_path):
    path = write_keras2(tmp_path / "w.h5", {"block1_conv1": [np.zeros((3, 3, 3, 4), "f4")]})
    with h5py.File(path, "a") as f:
        f["block1_conv1"].attrs["weight_names"] = np.array([b"g"])
        f["block1_conv1"].create_group("g")
    with pytest.raises(
        WeightsError,
        match=r"w\.h5: layer 'block1_conv1': '/block1_conv1/g' is a "
        r"group, not a dataset",
    ):
        read_weights(path)


@pytest.mark.weights
def test_real_file_with_a_replaced_kernel_is_refused_at_once(tmp_path):
    """The issue's exact experiment: the 59 MB file, block1_conv1's kernel replaced."""
    try:
        real = find_weights("vgg16")
    except FileNotFoundError:
        pytest.skip("no VGG16 weights (set MINIDL_WEIGHTS or run `minidl weights fetch vgg16`)")
    path = tmp_path / "vgg16_bomb.h5"
    shutil.copyfile(real, path)
    with h5py.File(path, "a") as f:
        name = "block1_conv1/block1_conv1_W_1:0"
        del f[name]
        f.create_dataset(name, shape=HUGE, dtype="f4", compression="gzip", chunks=(3, 3, 3, 64))
    message = refused_quickly(lambda: read_weights(path, expected=vgg16_shapes()))
    assert "block1_conv1.weight: expected shape (64, 3, 3, 3), found (38400000, 3, 3, 3)" in message
