"""Neural style transfer by optimising the image (Gatys, Ecker & Bethge, 2016).

Start from the content photo (or noise) and change its *pixels* until VGG16
sees in it

* the **content** of the photo: the feature maps of a deep layer
  (``block4_conv2``) match the photo's, and
* the **style** of the painting: at several layers the Gram matrices (which
  channels fire together, wherever in the image) match the painting's.

The loss, exactly (so the numbers compare with other implementations)::

    content = Σ_content layers  mean((F − F_content)²)
    style   = Σ_style layers  w_l · mean((G − G_style)²),   G = F·Fᵀ / (C·H·W)
    tv      = mean((x[i+1, j] − x[i, j])²) + mean((x[i, j+1] − x[i, j])²)
    loss    = content_weight · content + style_weight · style + tv_weight · tv

with F a layer's (C, H·W) feature map and x the image in VGG16's input scale
(BGR, 0-255, mean removed).  The log reports the three *weighted* parts, so
they add up to the loss.  Several style images give a blended target:
G_style = Σ_k b_k · G_k with the blend weights b normalised to sum to one.

The defaults are those of jcjohnson/neural-style on VGG16: L-BFGS without line
search, content weight 5, style weight 100, TV weight 1e-3, 500 iterations at
512 px.  Options follow neural-style: ``style_scale``, ``init``, ``pooling``,
``original_colors`` (luminance transfer, :mod:`minidl.style.colors`) and
``scales`` (coarse to fine: each size starts from the previous result, upsampled).

Example::

    from minidl.style.gatys import stylize
    image, log = stylize("grace_hopper", "starry_night", size=256, iterations=100)
"""

from __future__ import annotations

import math
import sys

import numpy as np
from PIL import Image

import minidl.functional as F
from minidl import optim
from minidl.autograd import no_grad
from minidl.models.vgg16 import LAYER_NAMES, POOLINGS, deprocess, preprocess
from minidl.runs import RunInterrupted, RunLog, load_vgg16, resolve_image
from minidl.style.blend import blend_weights
from minidl.style.colors import match_luminance
from minidl.tensor import tensor

CONTENT_LAYERS = ("block4_conv2",)
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
OPTIMIZERS = ("lbfgs", "adam")


def stylize(content, styles, *, style_blend_weights=None, content_layers=CONTENT_LAYERS,
            style_layers=STYLE_LAYERS, style_layer_weights=None, content_weight=5.0,
            style_weight=100.0, tv_weight=1e-3, size=512, style_scale=1.0, init="content",
            optimizer="lbfgs", lr=1.0, iterations=500, pooling="max", original_colors=False,
            scales=None, seed=0, device="cpu", weights=None, save_every=0, on_save=None,
            progress=True):
    """Paint ``content`` in the style of ``styles``; return ``(image, log)``.

    ``content`` and each style: a uint8 (H, W, 3) array, a file path, or a
    bundled name.  ``styles`` may be one of those or a list.  ``size`` is the
    longest side of the result; ``scales`` (a list of sizes) replaces it with a
    coarse-to-fine run of ``iterations`` at each.  ``weights``: None (find the
    weight file), a path, "random" or a built VGG16.  ``on_save(i, image)`` is
    called every ``save_every`` iterations.  Ctrl-C raises
    :class:`minidl.runs.RunInterrupted` carrying the best image so far.

    Returns the image with the lowest loss (uint8) and the log dictionary
    (keys as in :class:`minidl.runs.RunLog`; rows are one per loss evaluation,
    ``i`` counting L-BFGS iterations, 0 being the start).
    """
    settings = {
        "content_layers": list(content_layers), "style_layers": list(style_layers),
        "style_layer_weights": style_layer_weights, "content_weight": content_weight,
        "style_weight": style_weight, "tv_weight": tv_weight, "size": size, "style_scale": style_scale,
        "init": init if isinstance(init, str) else "array", "optimizer": optimizer, "lr": lr,
        "iterations": iterations, "pooling": pooling, "original_colors": original_colors,
        "scales": scales, "seed": seed, "style_blend_weights": style_blend_weights,
    }
    styles = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    sizes = [int(s) for s in scales] if scales else [size]
    layer_weights = _check_settings(settings, sizes, len(styles))
    blend = blend_weights(style_blend_weights, len(styles), "stylize")

    content_full = resolve_image(content)
    style_full = [resolve_image(s) for s in styles]
    named_init = isinstance(init, str) and init in ("content", "random")
    init_full = None if named_init else resolve_image(init)
    init = init if named_init else "image"
    for s in sizes:
        _check_size(resize_to(content_full, s).shape, [*content_layers, *style_layers], "content")
        style_side = math.ceil(s * style_scale)
        for spec, img in zip(styles, style_full):
            _check_size(resize_to(img, style_side).shape, tuple(style_layers), f"style {spec}")

    model = load_vgg16(weights, pooling=pooling, device=device)
    log = RunLog("stylize", settings, device)
    log.start()
    state = _Best()
    step, x_prev, s = 0, None, sizes[0]
    to_image = _image_maker(resize_to(content_full, s), original_colors)
    try:
        for s in sizes:
            content_img = resize_to(content_full, s)
            targets = _targets(model, content_img, style_full, blend, math.ceil(s * style_scale),
                               content_layers, style_layers, device)
            start = _start_image(x_prev, content_img, init, init_full, seed)
            x = tensor(start, device=device, requires_grad=True)
            parts = _Loss(model, targets, content_layers, style_layers, layer_weights,
                          content_weight, style_weight, tv_weight)
            to_image = _image_maker(content_img, original_colors)
            step = _optimise(x, parts, optimizer, lr, iterations, step, s, log, state,
                             to_image, save_every, on_save, progress, len(sizes) > 1)
            x_prev = _host(state.x)
    except KeyboardInterrupt:
        image = to_image(state.x) if state.x is not None else content_full
        raise RunInterrupted(image, log.finish(**state.parts, size=s)) from None
    image = to_image(state.x)
    log.extra["stop_reason"] = state.stop_reason
    return image, log.finish(**state.parts, size=sizes[-1])


def stylize_loss(model, x, targets, content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS,
                 layer_weights=None, content_weight=5.0, style_weight=100.0, tv_weight=1e-3):
    """The weighted loss parts ``(content, style, tv)`` for image ``x`` (Tensors).

    ``targets`` maps each content layer to its feature map and each style layer
    to its (blended) Gram matrix, as :func:`style_targets` makes them.
    """
    layer_weights = layer_weights or [1.0] * len(style_layers)
    features = model.features(x, list(dict.fromkeys([*content_layers, *style_layers])))
    content = sum(F.mse_loss(features[name], targets[name]) for name in content_layers)
    style = sum(
        w * F.mse_loss(F.gram_matrix(features[name]), targets[name])
        for name, w in zip(style_layers, layer_weights)
    )
    return content_weight * content, style_weight * style, tv_weight * F.tv_loss(x)


def style_targets(model, content_img, style_imgs, blend, content_layers, style_layers,
                  device="cpu"):
    """Content feature maps and blended style Gram matrices (no graph kept)."""
    with no_grad():
        feats = model.features(preprocess(content_img, device), list(content_layers))
        targets = {name: feats[name].detach() for name in content_layers}
        for k, (img, b) in enumerate(zip(style_imgs, blend)):
            feats = model.features(preprocess(img, device), list(style_layers))
            for name in style_layers:
                gram = F.gram_matrix(feats[name]) * b
                targets[name] = gram if k == 0 else targets[name] + gram
    return targets


def resize_to(img: np.ndarray, side: int) -> np.ndarray:
    """``img`` resized so its longest side is ``side`` (a no-op when it already is)."""
    from minidl.image import resize_image

    return resize_image(img, side)


# ---------------------------------------------------------------- the pieces


class _Best:
    """The lowest-loss image seen so far (in VGG16's input scale) and its loss parts."""

    def __init__(self):
        self.x, self.loss, self.parts, self.stop_reason = None, math.inf, {}, None

    def offer(self, x_data, loss, parts):
        if loss < self.loss:
            self.x, self.loss, self.parts = x_data.copy(), loss, {"loss": loss, **parts}


class _Loss:
    """The closure's work: evaluate the loss parts for the current image."""

    def __init__(self, model, targets, content_layers, style_layers, layer_weights,
                 content_weight, style_weight, tv_weight):
        self.model, self.targets = model, targets
        self.layers = content_layers, style_layers, layer_weights
        self.weights = content_weight, style_weight, tv_weight

    def __call__(self, x):
        return stylize_loss(self.model, x, self.targets, *self.layers, *self.weights)


def _targets(model, content_img, style_full, blend, style_side, content_layers, style_layers,
             device):
    styles = [resize_to(img, style_side) for img in style_full]
    return style_targets(model, content_img, styles, blend, content_layers, style_layers, device)


def _optimise(x, parts, optimizer, lr, iterations, step, size, log, state, to_image,
              save_every, on_save, progress, several_sizes):
    """Run ``iterations`` of the optimiser on ``x``; returns the global step count."""
    from tqdm import tqdm

    state.loss = math.inf  # a new size: its losses are not comparable with the last one's
    bar = tqdm(total=iterations, disable=not progress, file=sys.stderr, leave=False,
               desc=f"stylize {size}px" if several_sizes else "stylize", unit="it")
    first = step
    count = 0

    def closure():
        nonlocal count
        x.grad = None
        content, style, tv = parts(x)
        loss = content + style + tv
        loss.backward()
        values = {"content": float(content), "style": float(style), "tv": float(tv)}
        total = float(loss)
        i = first + count
        log.add(i, loss=total, **values, size=size)
        state.offer(x.data, total, values)
        if count > 0:
            bar.update(1)
            bar.set_postfix(loss=f"{total:.4g}", content=f"{values['content']:.3g}",
                            style=f"{values['style']:.3g}", tv=f"{values['tv']:.3g}")
            if save_every and on_save and i % save_every == 0:
                on_save(i, to_image(x.data))
        count += 1
        return loss

    try:
        if optimizer == "lbfgs":
            # No early stop, as neural-style (tolX = tolFun = -1): L-BFGS's first step
            # is 1/|g|₁, which at 1024 px moves the float32 loss by less than its last
            # digit, and the "loss did not change" test would end the run there.
            opt = optim.LBFGS([x], lr=lr, max_iter=iterations, history_size=100,
                              tolerance_grad=-1, tolerance_change=-1)
            opt.step(closure)
            state.stop_reason = opt.stop_reason
        else:
            opt = optim.Adam([x], lr=lr)
            for _ in range(iterations):
                closure()
                opt.step()
            closure()  # the loss of the final image
            state.stop_reason = "max_iter"
    finally:
        bar.close()
    return first + count - 1


def _image_maker(content_img, original_colors):
    def to_image(x_data):
        image = deprocess(_host(x_data))
        return match_luminance(image, content_img) if original_colors else image
    return to_image


def _start_image(x_prev, content_img, init, init_full, seed):
    """The starting image in VGG16's input scale, shaped like ``content_img``."""
    h, w = content_img.shape[:2]
    if x_prev is not None:  # coarse to fine: upsample the previous size's result
        up = [np.asarray(Image.fromarray(plane).resize((w, h), Image.Resampling.BICUBIC))
              for plane in x_prev[0].astype(np.float32)]
        return np.stack(up)[None]
    if init == "content":
        return preprocess(content_img).numpy()
    if init == "random":
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((1, 3, h, w)) * 0.001).astype(np.float32)
    resized = Image.fromarray(init_full).resize((w, h), Image.Resampling.LANCZOS)
    return preprocess(np.asarray(resized)).numpy()


def _host(array):
    """A NumPy copy of a device array (CuPy arrays have ``.get()``)."""
    return array.get() if hasattr(array, "get") else np.asarray(array)




def _check_settings(s, sizes, n_styles) -> list[float]:
    """Refuse bad settings before any work; returns the style layer weights."""
    if n_styles < 1:
        raise ValueError("stylize: give at least one style image")
    for kind in ("content_layers", "style_layers"):
        names = s[kind]
        unknown = [n for n in names if n not in LAYER_NAMES]
        if not names or unknown:
            raise ValueError(
                f"unknown {kind[:-1].replace('_', ' ')}(s) {', '.join(unknown) or '(none given)'}; "
                f"valid names: {', '.join(LAYER_NAMES)}"
            )
    if set(s["content_layers"]) & set(s["style_layers"]):
        raise ValueError("a layer cannot be both a content and a style layer")
    weights = s["style_layer_weights"]
    weights = [1.0] * len(s["style_layers"]) if weights is None else [float(w) for w in weights]
    if len(weights) != len(s["style_layers"]):
        raise ValueError(
            f"style_layer_weights: got {len(weights)} weight(s) for "
            f"{len(s['style_layers'])} style layer(s)"
        )
    if not isinstance(s["iterations"], (int, np.integer)) or s["iterations"] < 1:
        raise ValueError(f"iterations must be a positive integer, got {s['iterations']!r}")
    for side in sizes:
        if side < 1:
            raise ValueError(f"size must be a positive integer, got {side}")
    for name in ("content_weight", "style_weight", "tv_weight"):
        if s[name] < 0:
            raise ValueError(f"{name} must be >= 0, got {s[name]}")
    if s["style_scale"] <= 0:
        raise ValueError(f"style_scale must be positive, got {s['style_scale']}")
    if s["lr"] <= 0:
        raise ValueError(f"lr must be positive, got {s['lr']}")
    if s["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {s['optimizer']!r}")
    if s["pooling"] not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {s['pooling']!r}")
    return weights


def _check_size(shape, layers, what):
    deepest = max(LAYER_NAMES.index(name) for name in layers)
    pools = sum(name.endswith("_pool") for name in LAYER_NAMES[: deepest + 1])
    if min(shape[:2]) < 2**pools:
        raise ValueError(
            f"{what} image of {shape[1]}x{shape[0]} pixels is too small for "
            f"{LAYER_NAMES[deepest]}: it needs at least {2**pools} pixels per side "
            f"(raise --size)"
        )
