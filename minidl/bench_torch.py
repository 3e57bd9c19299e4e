"""``minidl bench --compare-torch``: minidl against PyTorch on the same device, in one process.

On ``--device cpu`` (the default) minidl's NumPy backend meets PyTorch CPU; on
``--device cuda`` minidl's hand-written kernels meet PyTorch's cuDNN and cuBLAS,
with TF32 off (float32 against float32) and ``cudnn.benchmark`` on (cuDNN picks
its fastest algorithm for each shape: the strongest reference there is).

Two workloads, each run by both frameworks on the same weights and the same input:

* **vgg16**: batch 1, float32, frozen weights, forward to ``block5_conv3`` (after
  its ReLU) and the gradient of the sum of its outputs w.r.t. the input image --
  one step of feature inversion.
* **stylize**: one evaluation (loss + gradient w.r.t. the image) of the Gatys
  loss with ``minidl stylize``'s defaults: 5 x content MSE at ``block4_conv2`` +
  100 x Σ style Gram MSE at ``block1_conv1..block5_conv1`` + 1e-3 x TV, with
  G = F·Fᵀ/(C·H·W) and TV the mean squared difference of vertical plus
  horizontal neighbours.

The two frameworks take turns (minidl then torch, torch then minidl, ...) so that
a busy machine slows both alike.  Two ratios come out: of the best times, and
the median over the turns of each turn's minidl/torch ratio, which a noisy
machine moves less.  Peak memory is the resident high-water mark of a fresh
process that runs one pass of one framework (the same process cannot tell whose
memory it was), minus what that process held before building the network.

PyTorch is optional: when it is not importable, :func:`torch_missing` says so
and nothing runs.
"""

from __future__ import annotations

import importlib.util
import os
import time

import numpy as np

CONTENT_LAYER = "block4_conv2"
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 5.0, 100.0, 1e-3

#: (workload, size in px) rows of the comparison, per device.
DEFAULT_ROWS = {
    "cpu": (("vgg16", 224), ("vgg16", 512), ("stylize", 256)),
    "cuda": (("vgg16", 224), ("vgg16", 512), ("stylize", 256), ("stylize", 512)),
}


def torch_missing() -> str | None:
    """None when PyTorch is importable, else a one-line explanation."""
    if importlib.util.find_spec("torch") is None:
        return (
            "minidl bench --compare-torch: PyTorch is not installed; it is an optional extra "
            "used only for this comparison (pip install torch)"
        )
    return None


def weights_source() -> str | None:
    """The VGG16 weight file named by MINIDL_WEIGHTS, or None (random weights)."""
    path = os.environ.get("MINIDL_WEIGHTS")
    return path if path and os.path.isfile(path) else None


# ---------------------------------------------------------------- the two networks


def _minidl_model(device: str = "cpu"):
    from minidl.models import vgg16

    return vgg16(weights=weights_source(), device=device)


def _torch(device: str):
    """PyTorch, set up for a float32 comparison on ``device``."""
    import torch

    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = False  # float32 against float32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = True  # cuDNN's fastest algorithm per shape
    return torch


def synchronize(device: str) -> None:
    """Wait until the GPU has finished all queued work (of CuPy and PyTorch alike)."""
    if device == "cuda":
        import cupy

        cupy.cuda.runtime.deviceSynchronize()


def _torch_model(model, device: str = "cpu"):
    """PyTorch's VGG16 up to block5_conv3 with minidl ``model``'s weights, frozen."""
    torch = _torch(device)
    layers, names = [], []
    for name, layer in model._modules.items():
        if name.endswith("_pool"):
            layers.append(torch.nn.MaxPool2d(2, 2))
        else:
            c_out, c_in = layer.weight.shape[:2]
            conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
            conv.weight.data = torch.from_numpy(layer.weight.numpy())
            conv.bias.data = torch.from_numpy(layer.bias.numpy())
            layers += [conv, torch.nn.ReLU()]
        names.append(name)
        if name == "block5_conv3":
            break
    net = torch.nn.Sequential(*layers).eval().requires_grad_(False).to(device)
    # index (in net) of the ReLU output of each conv layer, by layer name
    taps, i = {}, 0
    for name in names:
        i += 1 if name.endswith("_pool") else 2
        taps[name] = i - 1
    return net, taps


def _torch_features(net, taps, x, wanted):
    out, deepest = {}, max(taps[name] for name in wanted)
    for i, layer in enumerate(net):
        x = layer(x)
        if i in taps.values():
            for name in wanted:
                if taps[name] == i:
                    out[name] = x
        if i == deepest:
            break
    return out


# ---------------------------------------------------------------- one pass of each


def _image(size: int, seed: int) -> np.ndarray:
    """A preprocessed-looking (1, 3, size, size) float32 input (values about ±100)."""
    return 60 * np.random.default_rng(seed).standard_normal((1, 3, size, size), dtype=np.float32)


def minidl_pass(workload: str, size: int, model, device: str = "cpu"):
    """Build minidl's side of ``workload`` at ``size`` px on ``model`` (minidl's VGG16
    on ``device``); return a function doing one pass."""
    import functools

    import minidl.functional as F
    from minidl.autograd import no_grad
    from minidl.tensor import tensor

    tensor = functools.partial(tensor, device=device)  # every tensor below lives on device
    if workload == "vgg16":
        image = _image(size, 0)

        def run():
            x = tensor(image, requires_grad=True)
            model.features(x, "block5_conv3")["block5_conv3"].sum().backward()
            return x.grad

        return run
    with no_grad():
        content = model.features(tensor(_image(size, 1)), CONTENT_LAYER)[CONTENT_LAYER]
        style = model.features(tensor(_image(size, 2)), STYLE_LAYERS)
        grams = {name: F.gram_matrix(f) for name, f in style.items()}
    start = _image(size, 3)

    def run():
        x = tensor(start, requires_grad=True)
        feats = model.features(x, (*STYLE_LAYERS, CONTENT_LAYER))
        loss = CONTENT_WEIGHT * F.mse_loss(feats[CONTENT_LAYER], content)
        for name in STYLE_LAYERS:
            loss = loss + STYLE_WEIGHT * F.mse_loss(F.gram_matrix(feats[name]), grams[name])
        loss = loss + TV_WEIGHT * F.tv_loss(x)
        loss.backward()
        return x.grad

    return run


def torch_pass(workload: str, size: int, model, device: str = "cpu"):
    """Build PyTorch's side of ``workload`` at ``size`` px with ``model``'s weights,
    on ``device``; return a function doing one pass."""
    torch = _torch(device)
    net, taps = _torch_model(model, device)

    def from_numpy(array):
        return torch.from_numpy(array).to(device)

    def gram(f):
        n, c, h, w = f.shape
        f = f.reshape(n, c, h * w)
        return f @ f.transpose(1, 2) / (c * h * w)

    if workload == "vgg16":
        image = from_numpy(_image(size, 0))

        def run():
            x = image.clone().requires_grad_(True)
            _torch_features(net, taps, x, ["block5_conv3"])["block5_conv3"].sum().backward()
            return x.grad

        return run
    mse = torch.nn.functional.mse_loss
    with torch.no_grad():
        content = _torch_features(net, taps, from_numpy(_image(size, 1)), [CONTENT_LAYER])
        content = content[CONTENT_LAYER]
        style = _torch_features(net, taps, from_numpy(_image(size, 2)), STYLE_LAYERS)
        grams = {name: gram(f) for name, f in style.items()}
    start = from_numpy(_image(size, 3))

    def run():
        x = start.clone().requires_grad_(True)
        feats = _torch_features(net, taps, x, (*STYLE_LAYERS, CONTENT_LAYER))
        loss = CONTENT_WEIGHT * mse(feats[CONTENT_LAYER], content)
        for name in STYLE_LAYERS:
            loss = loss + STYLE_WEIGHT * mse(gram(feats[name]), grams[name])
        dy, dx = x[:, :, 1:] - x[:, :, :-1], x[:, :, :, 1:] - x[:, :, :, :-1]
        loss = loss + TV_WEIGHT * ((dy * dy).mean() + (dx * dx).mean())
        loss.backward()
        return x.grad

    return run


# ---------------------------------------------------------------- measurements


def compare_times(workload: str, size: int, repeats: int, device: str = "cpu") -> dict:
    """Best seconds of minidl and of PyTorch on ``device``, run in turns in this
    process, and how far apart their input gradients are (relative max difference)."""
    torch = _torch(device)
    model = _minidl_model(device)
    ours = minidl_pass(workload, size, model, device)
    theirs = torch_pass(workload, size, model, device)
    g_ours, g_theirs = ours().numpy(), theirs().cpu().numpy()  # warm-up, and the check
    for _ in range(2 if device == "cuda" else 0):  # cuDNN's algorithm search, compiles
        ours(), theirs()
    error = float(np.abs(g_ours - g_theirs).max() / max(np.abs(g_theirs).max(), 1e-30))
    times = {"minidl": [], "torch": []}
    for turn in range(repeats):
        # Each goes first every other turn, so that neither always runs in the
        # other's wake (its caches, its memory, the CPU's clock).
        order = (("minidl", ours), ("torch", theirs))
        for name, run in order if turn % 2 == 0 else order[::-1]:
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)  # a GPU runs asynchronously: wait for the last kernel
            times[name].append(time.perf_counter() - start)
    best = {name: min(t) for name, t in times.items()}
    # The ratio within each turn: a busy minute slows both, so it cancels out.
    median_ratio = float(np.median(np.array(times["minidl"]) / np.array(times["torch"])))
    return {**best, "ratio": best["minidl"] / best["torch"], "median_ratio": median_ratio,
            "grad_error": error, "torch_threads": torch.get_num_threads()}  # fmt: skip


def peak_memory_mb(framework: str, workload: str, size: int) -> float | None:
    """Peak RSS growth (MB) of one pass of ``framework`` in this (fresh) process."""
    from minidl.bench import peak_rss_mb

    make = minidl_pass if framework == "minidl" else torch_pass
    if framework == "torch":
        import torch  # noqa: F401  # its import is part of the baseline, not the pass
    before = peak_rss_mb()
    make(workload, size, _minidl_model())()
    after = peak_rss_mb()
    return None if before is None else after - before
