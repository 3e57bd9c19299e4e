"""Whole networks on the kernel devices, through autograd.

The backend tests (test_kernels_equivalence.py) compare each kernel with the
cpu backend; here the same ops run through ``minidl.functional`` and
``backward()``, so the launch glue, the Function wiring and the gradient
bookkeeping are tested together on "cuda-emu" (and on "cuda" with a GPU).
"""

from __future__ import annotations

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.backends.cuda import cuda_available
from minidl.gradcheck import gradcheck
from minidl.tensor import tensor

HAVE_GPU, WHY_NOT = cuda_available()

DEVICES = [
    "cuda-emu",
    pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not HAVE_GPU, reason=WHY_NOT)]),
]


def make_inputs(device, seed=0):
    """A 2-image batch and the parameters of a small encoder/decoder, as float32."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x": rng.standard_normal((2, 3, 11, 9)),
        "w1": rng.standard_normal((5, 3, 3, 3)) * 0.3,
        "b1": rng.standard_normal(5) * 0.1,
        "w2": rng.standard_normal((5, 4, 3, 2)) * 0.3,  # conv_transpose2d: (C_in, C_out, kh, kw)
        "b2": rng.standard_normal(4) * 0.1,
    }
    return {
        k: tensor(v.astype(np.float32), device=device, requires_grad=True)
        for k, v in arrays.items()
    }


def network(x, w1, b1, w2, b2, pool="max"):
    """conv (stride 2) -> relu -> pool -> transposed conv (stride 2, output_padding) ->
    avg pool -> Gram matrix -> a scalar."""
    h = F.relu(F.conv2d(x, w1, b1, stride=2, padding=1))
    h = F.max_pool2d(h, 2, stride=1) if pool == "max" else F.avg_pool2d(h, 2, stride=1)
    h = F.conv_transpose2d(h, w2, b2, stride=2, padding=1, output_padding=1)
    h = F.avg_pool2d(h, 3, stride=2, padding=1)
    g = F.gram_matrix(h)
    return (g * g).sum() + h.mean()


@pytest.mark.parametrize("device", DEVICES)
def test_network_loss_and_every_gradient_match_cpu(device):
    on_cpu = make_inputs("cpu")
    on_device = make_inputs(device)
    loss_cpu = network(**on_cpu)
    loss_device = network(**on_device)
    loss_cpu.backward()
    loss_device.backward()
    np.testing.assert_allclose(loss_device.item(), loss_cpu.item(), rtol=1e-5)
    for name, t in on_cpu.items():
        got = on_device[name]
        scale = np.abs(t.grad.numpy()).max()
        np.testing.assert_allclose(got.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_through_a_small_network_in_float32(device):
    # Central differences in float32 need a large step and loose tolerances, and
    # no kinks: tanh instead of relu, average instead of max pooling.
    rng = np.random.default_rng(1)
    x = tensor(rng.standard_normal((1, 2, 7, 6)).astype(np.float32), device, requires_grad=True)
    w1 = tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32) * 0.3, device, requires_grad=True)
    w2 = tensor(rng.standard_normal((3, 2, 2, 2)).astype(np.float32) * 0.3, device, requires_grad=True)

    def small_network(x, w1, w2):
        h = F.tanh(F.conv2d(x, w1, stride=2, padding=1))
        h = F.conv_transpose2d(F.avg_pool2d(h, 2, stride=1), w2, stride=2)
        return F.gram_matrix(h)

    assert gradcheck(small_network, [x, w1, w2], eps=1e-2, atol=2e-3, rtol=2e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_pool_unpool_round_trip_on_device(device):
    rng = np.random.default_rng(2)
    x = tensor(rng.standard_normal((2, 3, 6, 8)).astype(np.float32), device)
    y, indices = F.max_pool2d(x, 2, return_indices=True)
    back = F.max_unpool2d(y, indices, 2, output_size=x.shape).numpy()
    x_host = x.numpy()
    kept = back != 0
    # Every window keeps exactly its maximum, at the switch; the rest is zero.
    assert kept.reshape(2, 3, 3, 2, 4, 2).sum(axis=(3, 5)).max() == 1
    np.testing.assert_array_equal(back[kept], x_host[kept])
    np.testing.assert_array_equal(back.reshape(2, 3, 3, 2, 4, 2).sum(axis=(3, 5)), y.numpy())


@pytest.mark.parametrize("device", DEVICES)
def test_unfold_and_fold_on_device_equal_cpu(device):
    """F.unfold / F.fold run the im2col kernels on the device, forward and backward."""
    data = np.random.default_rng(4).standard_normal((2, 3, 7, 6)).astype(np.float32)
    window = {"kernel_size": (3, 2), "dilation": (1, 2), "padding": 1, "stride": (2, 1)}
    results = []
    for where in ("cpu", device):
        x = tensor(data, device=where, requires_grad=True)
        cols = F.unfold(x, **window)
        y = F.fold(cols * cols, (7, 6), **window)
        y.sum().backward()
        results.append((cols.numpy(), y.numpy(), x.grad.numpy()))
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# Every other op runs on the device's array module (numpy or cupy) rather than a
# kernel; each must give the cpu result, forward and backward.
ELEMENTWISE_CASES = {
    "activations": lambda x: F.sigmoid(x) + F.tanh(x) * F.leaky_relu(x, 0.2) - F.relu(x),
    "reflection_pad2d": lambda x: F.reflection_pad2d(x, (1, 2, 2, 1)) ** 2,
    "upsample_nearest": lambda x: F.upsample_nearest(x, 3) * 2,
    "instance_norm": lambda x: F.instance_norm(x) * x,
    "batch_norm": lambda x: F.batch_norm(x, training=True) * x,
    "adain": lambda x: F.adain(x, x[:1] * 2 + 1),
    "losses": lambda x: F.mse_loss(x, x.detach() * 0.5) + F.tv_loss(x) + F.ssim(x, x * 0.9, 3),
    "l1_loss": lambda x: F.l1_loss(x, x.detach() * 0.5, reduction="none"),
    "pad": lambda x: (
        F.pad(x, (1, 2, 0, 1), value=0.5) * F.pad(x, (1, 2, 0, 1), mode="reflect")
        + F.pad(x, (1, 2, 0, 1), mode="replicate")
    ),
    "interpolate": lambda x: (
        F.interpolate(x, size=(7, 4), mode="bilinear") * F.interpolate(x, size=(7, 4))
    ),
    "softmax": lambda x: F.softmax(x, dim=1) * F.log_softmax(x, dim=-1),
    "tensor ops": lambda x: (
        x[:, :, [0, 2, 2], 1:].exp().sum(axis=(0, 3)).amax(axis=1).sqrt().clip(0.0, 2.0).abs()
        + (x.reshape(2, -1) @ x.reshape(-1, 2)).mean()
        + minidl.concat([x, x], axis=1).permute(0, 2, 3, 1).sum() / 4
    ),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ELEMENTWISE_CASES)
def test_array_module_ops_match_cpu(device, name):
    op = ELEMENTWISE_CASES[name]
    data = np.random.default_rng(3).uniform(0.1, 1.0, (2, 3, 5, 6)).astype(np.float32)
    results = []
    for where in ("cpu", device):
        x = tensor(data, device=where, requires_grad=True)
        y = op(x)
        y.sum().backward()
        results.append((y.numpy(), x.grad.numpy()))
    (y_cpu, g_cpu), (y_dev, g_dev) = results
    np.testing.assert_allclose(y_dev, y_cpu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_dev, g_cpu, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_optimisers_built_before_the_model_moves_follow_it(device):
    from minidl import nn
    from minidl.optim import SGD, Adam

    net = nn.Sequential(nn.Conv2d(1, 2, 3, seed=0))
    optimisers = [SGD(net.parameters(), lr=0.1, momentum=0.9), Adam(net.parameters(), lr=0.1)]
    net.to(device)
    for optimiser in optimisers:
        net(tensor(np.ones((1, 1, 4, 4), np.float32), device=device)).sum().backward()
        before = net[0].weight.numpy().copy()
        optimiser.step()
        optimiser.zero_grad()
        assert not np.array_equal(net[0].weight.numpy(), before)
