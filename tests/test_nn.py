"""Modules: parameter names, train/eval, initialisation, saving and loading, devices."""

import math

import numpy as np
import pytest

from minidl import nn
from minidl.tensor import Tensor, tensor
from minidl.weights import WeightsError


def small_net(seed=0):
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, dtype=np.float64, seed=seed),
        nn.BatchNorm2d(4, dtype=np.float64),
        nn.ReLU(),
        nn.ConvTranspose2d(4, 2, 2, stride=2, bias=False, dtype=np.float64, seed=seed + 1),
    )


def rand(*shape, seed=0):
    return tensor(np.random.default_rng(seed).standard_normal(shape))


# ------------------------------------------------------------ walking the tree
def test_named_parameters_and_buffers():
    net = small_net()
    assert [name for name, _ in net.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias", "3.weight",
    ]
    assert [name for name, _ in net.named_buffers()] == ["1.running_mean", "1.running_var"]
    assert [p.shape for p in net.parameters()] == [(4, 3, 3, 3), (4,), (4,), (4,), (4, 2, 2, 2)]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert list(net.state_dict()) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "1.running_mean", "1.running_var",
    ]


def test_nested_modules_get_dotted_names():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 2, 1, seed=0), nn.ReLU())
            self.head = nn.Conv2d(2, 1, 1, bias=False, seed=1)

        def forward(self, x):
            return self.head(self.features(x))

    block = Block()
    assert [n for n, _ in block.named_parameters()] == [
        "features.0.weight", "features.0.bias", "head.weight",
    ]
    assert block(tensor(np.ones((1, 1, 2, 2), np.float32))).shape == (1, 1, 2, 2)
    # Re-assigning an attribute replaces the registration.
    block.head = nn.ReLU()
    assert [n for n, _ in block.named_parameters()] == ["features.0.weight", "features.0.bias"]


def test_reassigning_a_buffer_keeps_it_a_buffer():
    bn = nn.BatchNorm2d(2, dtype=np.float64)
    bn.running_mean = tensor(np.array([1.0, 2.0]))
    assert list(dict(bn.named_buffers())) == ["running_mean", "running_var"]
    np.testing.assert_array_equal(bn.state_dict()["running_mean"], [1.0, 2.0])


def test_zero_grad():
    net = small_net()
    net(rand(2, 3, 4, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_module_without_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.conv = nn.Conv2d(1, 1, 1)

    with pytest.raises(RuntimeError, match=r"Broken: call super\(\).__init__\(\) first"):
        Broken()


# ------------------------------------------------------------ train / eval
def test_train_and_eval_switch_every_submodule():
    net = small_net()
    assert all(m.training for _, m in net.named_modules())
    assert net.eval() is net
    assert not any(m.training for _, m in net.named_modules())
    net.train()
    assert all(m.training for _, m in net.named_modules())


def test_batchnorm_running_statistics_update_as_in_pytorch():
    bn = nn.BatchNorm2d(2, momentum=0.1, dtype=np.float64)
    x = rand(3, 2, 2, 2, seed=1)
    bn(x)
    # PyTorch: running = (1 - momentum)·running + momentum·batch, with the *unbiased*
    # batch variance (divide by n - 1 = 3·2·2 - 1 = 11) for running_var.
    batch_mean = x.data.mean(axis=(0, 2, 3))
    batch_var = x.data.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean.data, 0.9 * 0 + 0.1 * batch_mean)
    np.testing.assert_allclose(bn.running_var.data, 0.9 * 1 + 0.1 * batch_var)
    x2 = rand(3, 2, 2, 2, seed=2)
    bn(x2)
    np.testing.assert_allclose(
        bn.running_mean.data, 0.9 * (0.1 * batch_mean) + 0.1 * x2.data.mean(axis=(0, 2, 3))
    )


def test_batchnorm_train_uses_batch_statistics_and_eval_the_running_ones():
    bn = nn.BatchNorm2d(2, dtype=np.float64)
    x = rand(4, 2, 3, 3, seed=3) * 5 + 2
    y_train = bn(x).data
    biased_var = x.data.var(axis=(0, 2, 3), keepdims=True)  # normalisation uses the biased one
    expected = (x.data - x.data.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(biased_var + 1e-5)
    np.testing.assert_allclose(y_train, expected)
    running_mean, running_var = bn.running_mean.data.copy(), bn.running_var.data.copy()

    bn.eval()
    y_eval = bn(x).data
    expected = (x.data - running_mean[:, None, None]) / np.sqrt(running_var[:, None, None] + 1e-5)
    np.testing.assert_allclose(y_eval, expected)
    np.testing.assert_array_equal(bn.running_mean.data, running_mean)  # no update in eval


def test_norm_layers_check_the_channels():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected \(N, 3, H, W\), got \(1, 2, 2, 2\)"):
        nn.BatchNorm2d(3)(rand(1, 2, 2, 2))


# ------------------------------------------------------------ initialisation
@pytest.mark.parametrize(
    "layer, fan_in",
    [
        (nn.Conv2d(3, 8, 3, seed=0), 3 * 3 * 3),
        (nn.Conv2d(16, 4, (1, 5), seed=1), 16 * 1 * 5),
        # PyTorch computes a transposed conv's fan_in from weight.shape[1] = C_out.
        (nn.ConvTranspose2d(6, 2, 4, seed=2), 2 * 4 * 4),
    ],
)
def test_kaiming_uniform_bounds(layer, fan_in):
    bound = 1 / math.sqrt(fan_in)
    for p in (layer.weight, layer.bias):
        assert np.abs(p.data).max() <= bound
    # ... and they fill the range: uniform, not a narrow bell.
    assert np.abs(layer.weight.data).max() > 0.8 * bound
    assert layer.weight.dtype == np.float32


def test_seed_makes_initialisation_reproducible():
    a, b = nn.Conv2d(2, 3, 3, seed=7), nn.Conv2d(2, 3, 3, seed=7)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


# ------------------------------------------------------------ save / load
def test_save_load_round_trip(tmp_path):
    net = small_net(seed=0)
    net(rand(2, 3, 4, 4, seed=4))  # give BatchNorm some running statistics
    net.eval()
    path = tmp_path / "net.h5"
    net.save(path)

    other = small_net(seed=10).eval()
    x = rand(1, 3, 4, 4, seed=5)
    assert not np.allclose(other(x).data, net(x).data)
    other.load(path)
    np.testing.assert_array_equal(other(x).data, net(x).data)
    for (name, a), b in zip(net.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_save_refuses_to_overwrite(tmp_path):
    net = small_net()
    path = tmp_path / "net.h5"
    net.save(path)
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        net.save(path)
    net.save(path, overwrite=True)


def test_strict_load_names_the_mismatched_parameter_and_the_shapes(tmp_path):
    path = tmp_path / "wide.h5"
    nn.Sequential(nn.Conv2d(3, 5, 3, seed=0)).save(path)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, seed=1))
    before = net.state_dict()
    with pytest.raises(WeightsError, match=r"0.weight: expected shape \(4, 3, 3, 3\), "
                                           r"found \(5, 3, 3, 3\)"):
        net.load(path)
    for name, array in net.state_dict().items():  # nothing was loaded
        np.testing.assert_array_equal(array, before[name])


def test_strict_load_names_missing_and_unexpected_keys():
    net = nn.Sequential(nn.Conv2d(1, 1, 1, seed=0))
    state = net.state_dict()
    state["1.weight"] = state.pop("0.bias")
    with pytest.raises(WeightsError, match=r"missing keys: 0.bias(.|\n)*unexpected keys: 1.weight"):
        net.load_state_dict(state)


def test_non_strict_load_of_a_subset(tmp_path):
    source = small_net(seed=0)
    path = tmp_path / "convs.h5"
    nn.Sequential(source[0]).save(path)  # only "0.weight" and "0.bias"
    net = small_net(seed=3)
    untouched = net[3].weight.data.copy()
    with pytest.raises(WeightsError, match="missing keys: 1.weight"):
        net.load(path)
    net.load(path, strict=False)
    np.testing.assert_array_equal(net[0].weight.data, source[0].weight.data)
    np.testing.assert_array_equal(net[0].bias.data, source[0].bias.data)
    np.testing.assert_array_equal(net[3].weight.data, untouched)


def test_non_strict_load_still_checks_shapes():
    net = nn.Sequential(nn.Conv2d(1, 2, 1, seed=0))
    with pytest.raises(WeightsError, match=r"0.bias: expected shape \(2,\), found \(3,\)"):
        net.load_state_dict({"0.bias": np.zeros(3)}, strict=False)


# ------------------------------------------------------------ devices
def test_to_cuda_emu_moves_parameters_and_buffers():
    net = small_net()
    weights = net.state_dict()
    assert net.to("cuda-emu") is net
    for name, t in list(net.named_parameters()) + list(net.named_buffers()):
        assert t.device == "cuda-emu", name
        np.testing.assert_array_equal(t.numpy(), weights[name])
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert isinstance(net[1].running_mean, Tensor)
    assert net[0].weight is net.parameters()[0]  # the attribute and the registry agree
    net.to("cpu")
    assert {p.device for p in net.parameters()} == {"cpu"}


def test_to_keeps_the_parameter_objects_so_an_optimiser_still_works():
    from minidl.optim import SGD

    net = nn.Sequential(nn.Conv2d(1, 2, 3, seed=0))
    before = net.parameters()
    optimiser = SGD(before, lr=0.1)
    net.to("cuda-emu")
    assert all(a is b for a, b in zip(before, net.parameters()))
    net(tensor(np.ones((1, 1, 4, 4), np.float32), device="cuda-emu")).sum().backward()
    old = net[0].weight.numpy().copy()
    optimiser.step()
    assert not np.array_equal(net[0].weight.numpy(), old)


def test_frozen_layer_passes_input_gradients_and_skips_weight_gradients(monkeypatch):
    from minidl.backends import get_backend

    calls = []
    backend = get_backend("cpu")
    original = type(backend).conv2d_grad_weight
    monkeypatch.setattr(
        type(backend), "conv2d_grad_weight",
        lambda self, *args: calls.append(1) or original(self, *args),
    )
    conv = nn.Conv2d(2, 3, 3, seed=0).requires_grad_(False)
    x = tensor(np.ones((1, 2, 5, 5), np.float32), requires_grad=True)
    conv(x).sum().backward()
    assert x.grad is not None and np.abs(x.grad).sum() > 0
    assert conv.weight.grad is None and conv.bias.grad is None
    assert calls == []  # no weight-gradient GEMM was run
    conv.requires_grad_(True)
    conv(x).sum().backward()
    assert calls == [1] and conv.weight.grad is not None


def test_non_strict_load_with_no_matching_key_is_an_error():
    net = nn.Sequential(nn.Conv2d(1, 2, 1, seed=0))
    with pytest.raises(WeightsError, match=r"none of its keys \(conv.weight\) is a parameter or "
                                           r"buffer of Sequential \(0.weight, 0.bias\)"):
        net.load_state_dict({"conv.weight": np.zeros((2, 1, 1, 1))}, strict=False)
