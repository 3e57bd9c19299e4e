"""What a layer keeps: reconstruct an image from one layer's activations alone.

Mahendran & Vedaldi ("Understanding deep image representations by inverting
them", 2015): given the features Φ₀ = Φ(x₀) of an image at one VGG16 layer,
start from small random noise and change the pixels x until Φ(x) ≈ Φ₀::

    loss(x) = ‖Φ(x) − Φ₀‖² / ‖Φ₀‖²                   normalised feature error
            + alpha_weight · mean(|x / B|^α)              keeps pixels in range
            + tv_weight · mean(((Δᵢx)² + (Δⱼx)²) / V²)^(β/2)   smooth, no speckle

x is in VGG16's input scale (BGR, 0-255, ImageNet mean removed).  Dividing by
B = 80 (about the spread of a natural image's centred pixel values) and by
V = B / 6.5 (the typical neighbour difference, their choice) makes both
regularisers about 1 for a natural image, whatever the image size, so their
weights mean the same thing at every size.  The feature error is normalised
by ‖Φ₀‖², so it starts near 1 at every layer.  The optimiser (L-BFGS with a
strong-Wolfe line search by default) works on y = x / B, from noise of one grey
level: pixels of order one, where L-BFGS's first steps are well scaled.

Defaults (α = 6, β = 2 as in the paper): ``alpha_weight`` 1e-4 (the α-norm
only has to stop pixels running off) and ``tv_weight`` by block,
:data:`TV_WEIGHTS`, from 0.005 (block1) to 0.05 (block5).  How they were found,
on Grace Hopper with the real weights: a sweep of tv_weight 0.005 / 0.05 / 0.5
at block1_conv2 and block3_conv3 (96 px, 80 iterations) gave the lowest feature
error and the highest SSIM at 0.005 (block1: error 0.009, SSIM 0.95; 0.5 only
blurs); the deeper blocks get more because they constrain fewer degrees of
freedom, and without the prior their reconstructions fill with high-frequency
patterns that match Φ₀ just as well.  Checked with ``--layers all`` at 96 px and
block1_conv2 at 224 px (error 0.004, SSIM 0.97 after 300 iterations).  Because
both regularisers are normalised per pixel and the feature error by ‖Φ₀‖², the
same numbers hold at any size.

Example::

    from minidl.inversion.optimize import invert
    image, log = invert("grace_hopper", "block3_conv3", iterations=200)
    log["final"]["feature_error"], log["final"]["ssim"]
"""

from __future__ import annotations

import math
import sys

import numpy as np

import minidl.functional as F
from minidl import optim
from minidl.autograd import no_grad
from minidl.models.vgg16 import LAYER_NAMES, deprocess, preprocess
from minidl.runs import RunInterrupted, RunLog, load_vgg16, resolve_image
from minidl.tensor import tensor

B = 80.0  # spread of centred natural-image pixels, 0-255 scale
V = B / 6.5  # typical difference between neighbouring pixels
ALPHA_WEIGHT = 1e-4
#: tv_weight by block (1..5) when none is given: deeper layers lean more on the prior.
TV_WEIGHTS = {1: 0.005, 2: 0.005, 3: 0.01, 4: 0.02, 5: 0.05}
#: L-BFGS stops early once PATIENCE iterations lower the loss by less than this
#: fraction.  With Grace Hopper at 224 px, block2_conv2's loss was 0.03163 after
#: 131 iterations and 0.03160 after 300, the same picture, while block3..5 still
#: fell 1-3% per 20 iterations at 300 and so run them all.
MIN_PROGRESS = 0.003
PATIENCE = 25
#: What ``layers="all"`` means: the last convolution of every block.
LAST_CONVS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")


def invert(image, layer, *, size=224, iterations=300, seed=0, device="cpu", weights=None,
           alpha=6.0, beta=2.0, alpha_weight=None, tv_weight=None, optimizer="lbfgs", lr=1.0,
           min_progress=MIN_PROGRESS, progress=True, model=None):
    """Reconstruct ``image`` from its ``layer`` features; return ``(image, log)``.

    ``image``: uint8 array, path or bundled name, resized to ``size`` (longest
    side).  ``alpha_weight`` / ``tv_weight`` default to :data:`ALPHA_WEIGHT` and
    :data:`TV_WEIGHTS` for the layer's block.  ``weights``: None (find the file),
    a path, "random" or a built VGG16.  ``iterations`` is the most L-BFGS (or
    Adam) iterations; L-BFGS stops sooner once :data:`PATIENCE` iterations lower
    the loss by less than the fraction ``min_progress`` (0: never).  The log's
    "stop_reason" says which.  The log's "final" holds "loss",
    "feature_error" (normalised), "alpha_norm", "tv" (the weighted regulariser
    terms) and "ssim" (F.ssim against the original, RGB in 0-1).  Ctrl-C raises
    :class:`minidl.runs.RunInterrupted` with the best image so far.
    """
    if layer not in LAYER_NAMES:
        raise ValueError(f"unknown layer {layer!r}; valid names: {', '.join(LAYER_NAMES)}")
    if not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if size < 1:
        raise ValueError(f"size must be a positive integer, got {size}")
    if not min_progress >= 0:  # (also refuses NaN)
        raise ValueError(f"min_progress must be >= 0, got {min_progress!r}")
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer must be lbfgs or adam, got {optimizer!r}")
    original = resolve_image(image, max_side=size)
    check_size(original.shape, layer)
    block = int(layer[len("block")])
    alpha_weight = ALPHA_WEIGHT if alpha_weight is None else alpha_weight
    tv_weight = TV_WEIGHTS[block] if tv_weight is None else tv_weight
    model = model or load_vgg16(weights, device=device)

    settings = {"layer": layer, "size": size, "iterations": iterations, "seed": seed, "alpha": alpha,
                    "beta": beta, "alpha_weight": alpha_weight, "tv_weight": tv_weight,
                    "optimizer": optimizer, "lr": lr, "min_progress": min_progress}
    log = RunLog("invert", settings, device)
    log.start()
    with no_grad():
        target = model.features(preprocess(original, device), layer)[layer].detach()
    target_norm = float((target * target).sum())
    # The optimiser works on y = x / B, pixels of order 1, as Mahendran & Vedaldi do:
    # in 0-255 units the gradient of a loss near 1 is so small that L-BFGS stalls.
    rng = np.random.default_rng(seed)
    start = (rng.standard_normal((1, 3, *original.shape[:2])) / B).astype(np.float32)  # std 1/255
    y = tensor(start, device=device, requires_grad=True)

    def parts(y):
        x = y * B
        diff = model.features(x, layer)[layer] - target
        feature = (diff * diff).sum() / max(target_norm, 1e-12)
        return feature, alpha_weight * alpha_norm(x, alpha), tv_weight * tv_beta(x, beta)

    best = {"loss": math.inf, "y": start}
    from tqdm import tqdm

    bar = tqdm(total=iterations, disable=not progress, file=sys.stderr, leave=False,
               desc=f"invert {layer}", unit="it")
    opt = None

    def closure():
        y.grad = None
        feature, a_norm, tv = parts(y)
        loss = feature + a_norm + tv
        loss.backward()
        row = log.add(len(log.rows), loss=loss, feature_error=feature, alpha_norm=a_norm, tv=tv)
        if row["loss"] < best["loss"]:
            best.update(row, y=np.array(_host(y.data)))
        # the bar counts iterations; the line search may evaluate several times in one
        bar.n = min(getattr(opt, "iterations", row["i"]), iterations)
        bar.set_postfix(loss=f"{row['loss']:.4g}", error=f"{row['feature_error']:.3g}")
        return loss

    try:
        if optimizer == "lbfgs":
            opt = optim.LBFGS([y], lr=lr, max_iter=PATIENCE, history_size=100,
                              line_search_fn="strong_wolfe")
            log.extra["stop_reason"] = _run_lbfgs(opt, closure, iterations, min_progress, best)
        else:
            opt = optim.Adam([y], lr=lr)
            for _ in range(iterations):
                closure()
                opt.step()
            closure()
    except KeyboardInterrupt:
        raise RunInterrupted(deprocess(best["y"] * B), log.finish(**_final(best, original))) from None
    finally:
        bar.close()
    result = deprocess(best["y"] * B)
    return result, log.finish(**_final(best, original, result))


def _run_lbfgs(opt, closure, iterations: int, min_progress: float, best: dict) -> str:
    """L-BFGS in rounds of PATIENCE iterations (its history carries over) until
    ``iterations`` ran, it converged, or a round lowered the best loss by less than
    the fraction ``min_progress`` of what it was.  Returns the reason it stopped."""
    while opt.iterations < iterations:
        opt.max_iter = min(PATIENCE, iterations - opt.iterations)
        loss_before = best["loss"]
        opt.step(closure)
        if opt.stop_reason != "max_iter":
            return opt.stop_reason
        if loss_before - best["loss"] < min_progress * abs(loss_before):
            return f"converged: the loss fell < {min_progress:.1%} in {opt.max_iter} iterations"
    return "max_iter"


def alpha_norm(x, alpha: float):
    """mean(|x / B|^α): about 1 for a natural image, large once pixels run off."""
    return ((x * (1.0 / B)).abs() ** alpha).mean()


def tv_beta(x, beta: float):
    """mean(((Δᵢx)² + (Δⱼx)²) / V²)^(β/2) over the pixels that have both neighbours."""
    dy = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
    dx = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
    squared = (dy * dy + dx * dx) * (1.0 / V**2)
    if beta == 2:
        return squared.mean()
    return ((squared + 1e-8) ** (beta / 2)).mean()  # + 1e-8: the slope of s^(β/2) at 0


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """F.ssim of two uint8 RGB images (scaled to 0-1), as a float."""
    def as_tensor(img):
        return tensor((img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy())
    with no_grad():
        return float(F.ssim(as_tensor(a), as_tensor(b)))


def check_size(shape, layer: str) -> None:
    """ValueError if an image of ``shape`` is too small to reach ``layer``."""
    deepest = LAYER_NAMES.index(layer)
    pools = sum(name.endswith("_pool") for name in LAYER_NAMES[: deepest + 1])
    if min(shape[:2]) < 2**pools:
        raise ValueError(
            f"image of {shape[1]}x{shape[0]} pixels is too small for {layer}: it needs at "
            f"least {2**pools} pixels per side (raise --size)"
        )


def _final(best, original, result=None) -> dict:
    final = {k: best[k] for k in ("loss", "feature_error", "alpha_norm", "tv") if k in best}
    if result is not None and min(original.shape[:2]) >= 11:  # SSIM's window is 11 px
        final["ssim"] = ssim(result, original)
    return final


def _host(array):
    return array.get() if hasattr(array, "get") else array
