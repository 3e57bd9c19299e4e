"""Tests for minidl.models.vgg16: architecture, loading, features, preprocessing.

Most tests use a randomly initialised VGG16 and tiny (32 px) inputs.  The tests
marked ``weights`` need the real VGG16 file and are skipped without it::

    MINIDL_WEIGHTS=/path/to/vgg16_notop.h5 pytest tests/test_vgg16.py
"""

from __future__ import annotations

import time

import h5py
import numpy as np
import pytest
from devices import skip_reason

from minidl.autograd import no_grad
from minidl.models import VGG16, vgg16
from minidl.models.vgg16 import LAYER_NAMES, MEAN_BGR, deprocess, preprocess
from minidl.nn import AvgPool2d, Conv2d, MaxPool2d
from minidl.tensor import tensor
from minidl.weights import WeightsError, find_weights, save_state_dict

# (output channels, downsampling factor) of every layer, written out by hand
# from the VGG16 paper, so that the code is checked against an independent table.
EXPECTED = {
    "block1_conv1": (64, 1), "block1_conv2": (64, 1), "block1_pool": (64, 2),
    "block2_conv1": (128, 2), "block2_conv2": (128, 2), "block2_pool": (128, 4),
    "block3_conv1": (256, 4), "block3_conv2": (256, 4), "block3_conv3": (256, 4),
    "block3_pool": (256, 8),
    "block4_conv1": (512, 8), "block4_conv2": (512, 8), "block4_conv3": (512, 8),
    "block4_pool": (512, 16),
    "block5_conv1": (512, 16), "block5_conv2": (512, 16), "block5_conv3": (512, 16),
    "block5_pool": (512, 32),
}  # fmt: skip


def expected_shape(name, n, h, w):
    """Shape of layer ``name`` for an (n, 3, h, w) input: poolings floor, like Keras."""
    channels, factor = EXPECTED[name]
    size_h, size_w = h, w
    for _ in range(factor.bit_length() - 1):  # one halving per pooling
        size_h, size_w = size_h // 2, size_w // 2
    return (n, channels, size_h, size_w)


@pytest.fixture(scope="module")
def model():
    """A random VGG16 (seed 0), shared by the tests that do not change it."""
    return vgg16()


def random_input(n=1, h=32, w=32, seed=0):
    rng = np.random.default_rng(seed)
    return tensor(rng.standard_normal((n, 3, h, w)).astype(np.float32) * 50)


# ---------------------------------------------------------------- architecture


def test_layer_names_in_order(model):
    assert LAYER_NAMES == tuple(EXPECTED)
    assert list(model._modules) == list(LAYER_NAMES)
    for name in LAYER_NAMES:
        layer = getattr(model, name)
        assert isinstance(layer, MaxPool2d if name.endswith("_pool") else Conv2d), name


def test_state_dict_keys_and_shapes(model):
    state = model.state_dict()
    convs = [name for name in LAYER_NAMES if "_conv" in name]
    assert len(convs) == 13
    assert list(state) == [f"{name}.{p}" for name in convs for p in ("weight", "bias")]
    in_channels = 3
    for name in convs:
        out_channels = EXPECTED[name][0]
        assert state[f"{name}.weight"].shape == (out_channels, in_channels, 3, 3)
        assert state[f"{name}.bias"].shape == (out_channels,)
        in_channels = out_channels
    assert sum(a.size for a in state.values()) == 14_714_688  # Keras' VGG16(include_top=False)


def test_random_init_is_seeded_and_eval_mode(model):
    again = vgg16().state_dict()
    for key, array in model.state_dict().items():
        np.testing.assert_array_equal(array, again[key])
    other = vgg16(seed=1)
    assert not np.array_equal(other.block1_conv1.weight.numpy(), model.block1_conv1.weight.numpy())
    assert model.training is False and model.block1_conv1.training is False


def test_avg_pooling():
    avg = VGG16(pooling="avg")
    assert isinstance(avg.block3_pool, AvgPool2d)
    with no_grad():
        out = avg.features(random_input(), ["block1_conv2", "block1_pool"])
    conv = out["block1_conv2"].numpy()
    manual = conv.reshape(1, 64, 16, 2, 16, 2).mean(axis=(3, 5))  # mean of each 2x2 block
    np.testing.assert_allclose(out["block1_pool"].numpy(), manual, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pooling must be 'max' or 'avg'"):
        VGG16(pooling="min")


# ---------------------------------------------------------------- loading


def to_keras_layers(state_dict, with_top=False):
    """The Keras 2 layers holding ``state_dict``: kernels back to (kh, kw, in, out)."""
    layers = {"input_1": []}
    for name in LAYER_NAMES:
        if name.endswith("_pool"):
            layers[name] = []
        else:
            kernel = state_dict[f"{name}.weight"].transpose(2, 3, 1, 0)
            layers[name] = [np.ascontiguousarray(kernel), state_dict[f"{name}.bias"]]
    if with_top:  # tiny stand-ins for the dense layers: only their names matter here
        dense = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]
        layers.update(flatten=[], fc1=dense, fc2=dense, predictions=dense)
    return layers


def write_keras2(path, layers):
    """Write ``layers`` in the Keras 2 legacy layout of the official VGG16 file."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([name.encode() for name in layers])
        for layer, arrays in layers.items():
            group = f.create_group(layer)
            names = [f"{layer}_{s}" for s in ("W_1:0", "b_1:0")][: len(arrays)]
            group.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")
            for name, array in zip(names, arrays):
                group.create_dataset(name, data=array)
    return path


def test_loads_full_size_keras2_file(tmp_path, model, capsys):
    """A synthetic file with the real VGG16 shapes (58 MB) loads back exactly."""
    start = time.perf_counter()
    path = write_keras2(tmp_path / "vgg16.h5", to_keras_layers(model.state_dict(), with_top=True))
    loaded = vgg16(weights=path, seed=123)  # a different random init, then overwritten
    assert time.perf_counter() - start < 5
    for key, array in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], array, err_msg=key)
    assert "ignored: fc1, fc2, predictions" in capsys.readouterr().out


def test_auto_uses_find_weights(tmp_path, model, monkeypatch):
    path = tmp_path / "mine.h5"
    model.save(path)  # minidl's own format round-trips as well
    monkeypatch.setenv("MINIDL_WEIGHTS", str(path))
    loaded = vgg16(weights="auto", pooling="avg")
    assert isinstance(loaded.block1_pool, AvgPool2d)
    np.testing.assert_array_equal(loaded.block5_conv3.bias.numpy(), model.block5_conv3.bias.numpy())


def test_wrong_file_is_an_error_naming_file_and_key(tmp_path, model):
    state = model.state_dict()
    state["block2_conv1.weight"] = state["block2_conv1.weight"][:, :32]  # 32 inputs, not 64
    path = write_keras2(tmp_path / "bad.h5", to_keras_layers(state))
    with pytest.raises(WeightsError, match="bad.h5") as info:
        vgg16(weights=path)
    message = str(info.value)
    assert "block2_conv1.weight" in message and "(128, 64, 3, 3)" in message
    assert "(128, 32, 3, 3)" in message

    state = model.state_dict()
    del state["block5_conv3.weight"], state["block5_conv3.bias"]
    path = save_state_dict(tmp_path / "short.h5", state)  # a minidl file missing a layer
    with pytest.raises(WeightsError, match="short.h5.*\n.*missing keys: block5_conv3.weight"):
        vgg16(weights=path)
    with pytest.raises(FileNotFoundError):
        vgg16(weights=tmp_path / "nothing.h5")


# ---------------------------------------------------------------- features


def test_features_shapes_at_32px(model):
    x = random_input(n=2, h=32, w=35)
    with no_grad():
        out = model.features(x, list(LAYER_NAMES))
    assert list(out) == list(LAYER_NAMES)
    for name, t in out.items():
        assert t.shape == expected_shape(name, 2, 32, 35), name
        assert t.dtype == np.float32
        assert np.all(t.numpy() >= 0), f"{name}: outputs are taken after the ReLU"
    with no_grad():
        np.testing.assert_array_equal(model(x).numpy(), out["block5_pool"].numpy())


def test_features_accepts_one_name_and_keeps_network_order(model):
    with no_grad():
        one = model.features(random_input(), "block1_pool")
        several = model.features(random_input(), ["block2_conv1", "block1_conv1"])
    assert list(one) == ["block1_pool"]
    assert list(several) == ["block1_conv1", "block2_conv1"]


def test_features_stop_at_the_deepest_requested_layer(model, monkeypatch):
    ran = []
    for name in LAYER_NAMES:
        layer = getattr(model, name)

        def recording_forward(x, name=name, forward=layer.forward):
            ran.append(name)
            return forward(x)

        monkeypatch.setattr(layer, "forward", recording_forward)
    with no_grad():
        model.features(random_input(), ["block1_conv1"])
        assert ran == ["block1_conv1"]
        ran.clear()
        model.features(random_input(), ["block1_conv1", "block2_pool"])
        assert ran == list(LAYER_NAMES[:6])


def test_features_gradient_reaches_the_input(model):
    """Inversion and style transfer optimise the image: the input must get a gradient."""
    x = random_input().requires_grad_()
    model.features(x, ["block2_conv1"])["block2_conv1"].sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape and np.any(x.grad != 0)


def test_features_errors(model):
    x = random_input()
    with pytest.raises(ValueError, match="unknown layer.*'block6_conv1'.*block1_conv1, "):
        model.features(x, ["block1_conv1", "block6_conv1"])
    with pytest.raises(ValueError, match="no layers requested"):
        model.features(x, [])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(3, 32, 32\)"):
        model.features(tensor(np.zeros((3, 32, 32), np.float32)), ["block1_conv1"])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(1, 1, 32, 32\)"):
        model.features(tensor(np.zeros((1, 1, 32, 32), np.float32)), ["block1_conv1"])
    with pytest.raises(TypeError, match="preprocess"):
        model.features(np.zeros((1, 3, 32, 32), np.float32), ["block1_conv1"])
    with pytest.raises(ValueError, match="too small for block5_pool.*at least 32 pixels"):
        model.features(random_input(h=16, w=40), ["block5_pool"])
    small = model.features(random_input(h=16, w=16), ["block4_pool"])  # 16 px is enough here
    assert small["block4_pool"].shape == (1, 512, 1, 1)
    with pytest.raises(ValueError, match="'cuda-emu'.*'cpu'"):
        model.features(random_input().to("cuda-emu"), ["block1_conv1"])


# ---------------------------------------------------------------- preprocessing


def test_preprocess_is_caffe_convention():
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 1] = (255, 0, 10)  # R, G, B
    x = preprocess(image)
    assert x.shape == (1, 3, 2, 3) and x.dtype == np.float32 and x.device == "cpu"
    # channel 0 is blue, channel 2 red; the BGR mean is subtracted
    np.testing.assert_allclose(x.numpy()[0, :, 0, 1], [10 - 103.939, 0 - 116.779, 255 - 123.68])
    np.testing.assert_allclose(x.numpy()[0, :, 1, 2], -MEAN_BGR)


def test_preprocess_deprocess_round_trip():
    rng = np.random.default_rng(1)
    for shape in [(5, 7, 3), (32, 32, 3), (1, 1, 3)]:
        image = rng.integers(0, 256, size=shape, dtype=np.uint8)
        back = deprocess(preprocess(image))
        assert back.dtype == np.uint8 and back.shape == image.shape
        assert np.abs(back.astype(int) - image).max() <= 1
    batch = rng.integers(0, 256, size=(4, 6, 5, 3), dtype=np.uint8)
    x = preprocess(batch)
    assert x.shape == (4, 3, 6, 5)
    np.testing.assert_array_equal(deprocess(x), batch[0])  # the first image of the batch


def test_deprocess_clips_and_accepts_arrays():
    x = np.zeros((3, 2, 2), np.float32)
    x[:, 0, 0] = 1000  # far above 255 after adding the mean
    x[:, 1, 1] = -1000
    image = deprocess(x)
    assert image[0, 0].tolist() == [255, 255, 255] and image[1, 1].tolist() == [0, 0, 0]
    assert image[0, 1].tolist() == [124, 117, 104]  # the mean colour, rounded, as RGB


def test_preprocess_errors():
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*\(4, 4\)"):
        preprocess(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\(4, 4, 4\)"):
        preprocess(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        preprocess(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        deprocess(np.zeros((1, 4, 4, 3), np.float32))


# ---------------------------------------------------------------- real weights


@pytest.fixture(scope="module")
def weights_path():
    try:
        return find_weights()
    except FileNotFoundError:
        pytest.skip(
            "real VGG16 weights not found: set MINIDL_WEIGHTS=/path/to/vgg16_notop.h5 "
            "or put the file in weights/ (minidl weights fetch vgg16)"
        )


@pytest.fixture(scope="module")
def pretrained(weights_path):
    return vgg16(weights=weights_path)


def grace_hopper(max_side):
    from minidl.data import sample

    return sample("grace_hopper", max_side=max_side)


@pytest.mark.weights
def test_pretrained_grace_hopper_all_layers(pretrained):
    image = grace_hopper(224)
    h, w = image.shape[:2]
    assert max(h, w) == 224
    with no_grad():
        out = pretrained.features(preprocess(image), LAYER_NAMES)
    for name, t in out.items():
        array = t.numpy()
        assert t.shape == expected_shape(name, 1, h, w), name
        assert np.all(np.isfinite(array)), name
        assert array.max() > 0, f"{name}: all zero"
    # A trained network is not a random one: deep layers are sparse but alive.
    zeros = np.mean(out["block5_conv3"].numpy() == 0)
    assert 0.5 < zeros < 0.999


def _skip_unless_device(device):
    reason = skip_reason(device)
    if reason:
        pytest.skip(f"{device} not available: {reason}")


# On cuda-emu every kernel is emulated (each CUDA thread an OS thread, every
# __syncthreads a real barrier), so it gets a 32x32 crop: all 13 convolutions and 5
# poolings take about 8 s on 2 cores.  MINIDL_GEMM=cublas swaps only the GEMM for the
# array module's matmul; that path is checked too.  On a real GPU, 224 px.
DEVICE_CASES = [
    pytest.param("cuda-emu", "block5_pool", "", 32, id="cuda-emu-block5_pool"),
    pytest.param("cuda-emu", "block5_pool", "cublas", 32, id="cuda-emu-blas-gemm-block5_pool"),
    pytest.param("cuda", "block5_pool", "", 224, id="cuda-block5_pool", marks=pytest.mark.gpu),
]


@pytest.mark.weights
@pytest.mark.parametrize("device, layer, gemm, size", DEVICE_CASES)
def test_pretrained_device_matches_cpu(
    pretrained, weights_path, monkeypatch, device, layer, gemm, size
):
    """The hand-written CUDA kernels give the cpu result on the real network.

    cuda-emu gets a 32x32 crop of the photo's face (enough for all five poolings).
    """
    _skip_unless_device(device)
    if gemm:
        monkeypatch.setenv("MINIDL_GEMM", gemm)
    else:
        monkeypatch.delenv("MINIDL_GEMM", raising=False)
    image = grace_hopper(224)
    if size == 32:
        image = image[40:72, 60:92]
    x = preprocess(image)
    with no_grad():
        expected = pretrained.features(x, [layer])[layer].numpy()
        other = vgg16(weights=weights_path, device=device)
        start = time.perf_counter()
        found = other.features(x.to(device), [layer])[layer].numpy()
        seconds = time.perf_counter() - start
    print(f"{device}: VGG16 to {layer} at {image.shape[1]}x{image.shape[0]} took {seconds:.2f} s")
    assert found.shape == expected.shape
    scale = np.abs(expected).max()
    assert scale > 0
    assert np.abs(found - expected).max() <= 1e-4 * scale
