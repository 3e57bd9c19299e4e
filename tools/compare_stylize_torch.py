"""Gatys style transfer in minidl and in PyTorch: same weights, same start, same loss.

    python tools/compare_stylize_torch.py --size 256 --iterations 100 [--out DIR]

Builds PyTorch's VGG16 from minidl's weights, stylises Grace Hopper with the
Starry Night in both frameworks with the default loss of ``minidl stylize``
(content block4_conv2 x 5, style block1..5_conv1 x 100, TV x 1e-3, exactly as
:mod:`minidl.style.gatys` defines them), L-BFGS without line search and history
100 in both, and prints

* seconds per loss evaluation (forward + backward), the median of a few
  evaluations at the start image, alternating the frameworks;
* the final loss of each after ``--iterations`` L-BFGS iterations, and the gap;
* minidl's own profile of one evaluation (``--profile``): where the time goes.

``--threads N`` gives both frameworks N threads (NumPy's BLAS through
OPENBLAS_NUM_THREADS, set before NumPy is imported, and minidl's own split copies
and products through MINIDL_THREADS; PyTorch through ``torch.set_num_threads``).
On a busy machine one thread each is steadier.

Needs ``pip install torch``; not imported by the library.
"""

from __future__ import annotations

import os
import sys

if "--threads" in sys.argv:  # must happen before NumPy loads its BLAS
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MINIDL_THREADS"):
        os.environ[_var] = _n

import minidl  # noqa: F401

# isort: split

import argparse
import cProfile
import io
import json
import pstats
import statistics
import time
from pathlib import Path

import numpy as np

from minidl.models.vgg16 import preprocess
from minidl.runs import atomic_save_image, load_vgg16, resolve_image
from minidl.style.gatys import CONTENT_LAYERS, STYLE_LAYERS, resize_to, style_targets, stylize_loss
from minidl.tensor import tensor


def torch_vgg(model):
    """PyTorch modules for each VGG16 layer up to block5_conv1, with minidl's weights."""
    import torch

    layers = {}
    for name, layer in model._modules.items():
        if name.endswith("_pool"):
            layers[name] = torch.nn.MaxPool2d(2, 2)
        else:
            c_out, c_in = layer.weight.shape[:2]
            conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
            conv.weight.data = torch.from_numpy(layer.weight.numpy().copy())
            conv.bias.data = torch.from_numpy(layer.bias.numpy().copy())
            layers[name] = torch.nn.Sequential(conv, torch.nn.ReLU())
        if name == "block5_conv1":
            break
    return torch.nn.ModuleDict(layers).eval().requires_grad_(False)


def torch_loss(net, x, targets):
    """The same three weighted parts as minidl.style.gatys.stylize_loss."""
    wanted = set(CONTENT_LAYERS) | set(STYLE_LAYERS)
    feats, h = {}, x
    for name, layer in net.items():
        h = layer(h)
        if name in wanted:
            feats[name] = h
    content = sum(((feats[n] - targets[n]) ** 2).mean() for n in CONTENT_LAYERS)
    style = 0
    for n in STYLE_LAYERS:
        _, c, hh, ww = feats[n].shape
        f = feats[n].reshape(c, hh * ww)
        g = f @ f.T / (c * hh * ww)
        style = style + ((g - targets[n][0]) ** 2).mean()
    dy, dx = x[:, :, 1:, :] - x[:, :, :-1, :], x[:, :, :, 1:] - x[:, :, :, :-1]
    tv = (dy * dy).mean() + (dx * dx).mean()
    return 5.0 * content, 100.0 * style, 1e-3 * tv


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations of each")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--threads", type=int, help="threads for both frameworks")
    parser.add_argument("--out", type=Path, help="folder for the two images and results.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_vgg16(None)
    content = resize_to(resolve_image("grace_hopper"), args.size)
    style = resize_to(resolve_image("starry_night"), args.size)
    targets = style_targets(model, content, [style], [1.0], CONTENT_LAYERS, STYLE_LAYERS)
    start = preprocess(content).numpy()
    net = torch_vgg(model)
    t_targets = {k: torch.from_numpy(v.numpy().copy()) for k, v in targets.items()}

    def minidl_eval(x_np):
        x = tensor(x_np, requires_grad=True)
        loss = sum(stylize_loss(model, x, targets))
        loss.backward()
        return float(loss), x

    def torch_eval(x_np):
        x = torch.from_numpy(x_np.copy()).requires_grad_(True)
        loss = sum(torch_loss(net, x, t_targets))
        loss.backward()
        return float(loss.detach()), x

    # Seconds per evaluation, alternating so both see the same machine load.
    times = {"minidl": [], "torch": []}
    minidl_eval(start), torch_eval(start)  # warm-up
    for _ in range(args.repeats):
        for name, fn in (("minidl", minidl_eval), ("torch", torch_eval)):
            t = time.perf_counter()
            loss, _ = fn(start)
            times[name].append(time.perf_counter() - t)
    per_eval = {k: statistics.median(v) for k, v in times.items()}
    print(f"start loss {loss:.6g}; seconds per evaluation at {args.size} px: "
          f"minidl {per_eval['minidl']:.3f}, torch {per_eval['torch']:.3f}, "
          f"ratio {per_eval['minidl'] / per_eval['torch']:.2f}", flush=True)

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        minidl_eval(start)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
        print(text.getvalue())

    # L-BFGS in both, from the same start.
    from minidl import optim

    results = {}
    x = tensor(start.copy(), requires_grad=True)
    evals = []

    def closure():
        x.grad = None
        loss = sum(stylize_loss(model, x, targets))
        loss.backward()
        evals.append(float(loss))
        return loss

    t = time.perf_counter()
    # no early stop in either, as minidl stylize runs it (neural-style's tolX = tolFun = -1)
    opt = optim.LBFGS([x], lr=1.0, max_iter=args.iterations, history_size=100,
                      tolerance_grad=-1, tolerance_change=-1)
    opt.step(closure)
    results["minidl"] = {"seconds": time.perf_counter() - t, "evaluations": len(evals),
                         "final_loss": evals[-1], "best_loss": min(evals),
                         "stop_reason": opt.stop_reason}
    minidl_image = x.data.copy()
    print(f"minidl L-BFGS: {results['minidl']}", flush=True)

    xt = torch.from_numpy(start.copy()).requires_grad_(True)
    t_evals = []

    def t_closure():
        xt.grad = None
        loss = sum(torch_loss(net, xt, t_targets))
        loss.backward()
        t_evals.append(float(loss.detach()))
        return loss

    t = time.perf_counter()
    t_opt = torch.optim.LBFGS([xt], lr=1.0, max_iter=args.iterations, history_size=100,
                              tolerance_grad=-1, tolerance_change=-1)
    t_opt.step(t_closure)
    seconds = time.perf_counter() - t
    evaluations = len(t_evals)
    t_closure()  # torch's LBFGS does not evaluate its last iterate; minidl's does
    results["torch"] = {"seconds": seconds, "evaluations": evaluations,
                        "final_loss": t_evals[-1], "best_loss": min(t_evals)}
    print(f"torch L-BFGS:  {results['torch']}", flush=True)
    gap = results["minidl"]["final_loss"] / results["torch"]["final_loss"] - 1
    print(f"final loss gap (minidl / torch - 1): {gap:+.2%}; seconds per evaluation in the "
          f"runs: minidl {results['minidl']['seconds'] / results['minidl']['evaluations']:.3f}, "
          f"torch {results['torch']['seconds'] / results['torch']['evaluations']:.3f}")
    results.update(size=args.size, iterations=args.iterations, per_evaluation=per_eval,
                   ratio=per_eval["minidl"] / per_eval["torch"], final_loss_gap=gap,
                   torch_version=torch.__version__, torch_threads=torch.get_num_threads())
    if args.out:
        from minidl.models.vgg16 import deprocess

        args.out.mkdir(parents=True, exist_ok=True)
        atomic_save_image(args.out / "minidl.png", deprocess(minidl_image))
        atomic_save_image(args.out / "torch.png", deprocess(xt.detach().numpy()))
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
